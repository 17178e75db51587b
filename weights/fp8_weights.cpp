#include "weights/fp8_weights.hpp"

#include <c10/core/DeviceGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include "core/error.hpp"
#include "weights/fp8_codec_cuda.hpp"

namespace troupe {
namespace {

// LibTorch's current stream on `device`, as a cudaStream_t, without CUDA headers.
void* current_cuda_stream(const torch::Device& device) {
  return c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA).getStream(device).native_handle();
}

bool codec_dtype(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }

std::int64_t bytes_of(const torch::Tensor& t) { return t.numel() * static_cast<std::int64_t>(t.element_size()); }

}  // namespace

fp8_encoded fp8_encode_tensor(const torch::Tensor& x, fp8_scaling scaling, std::int64_t block) {
  if (x.dim() != 2 || !x.is_floating_point())
    throw input_error("fp8 codec: expects a 2-D floating tensor, got " + shape_text(x.sizes().vec()) + " of " +
                      std::string(c10::toString(x.scalar_type())));
  torch::NoGradGuard no_grad;
  auto in = (codec_dtype(x.scalar_type()) ? x : x.to(torch::kFloat32)).contiguous();
  fp8_encoded e;
  e.layout = fp8_layout::make(in.size(0), in.size(1), scaling, block);
  auto opts = torch::TensorOptions().device(in.device());
  e.codes = torch::empty({e.layout.rows, e.layout.cols}, opts.dtype(torch::kFloat8_e4m3fn));
  e.scales = torch::empty({e.layout.scale_rows(), e.layout.scale_cols()}, opts.dtype(torch::kFloat32));
  auto* codes = static_cast<std::uint8_t*>(e.codes.data_ptr());
  auto* scales = e.scales.data_ptr<float>();
  const bool bf16 = in.scalar_type() == torch::kBFloat16;
  if (in.is_cuda()) {
    c10::DeviceGuard guard(in.device());
    void* stream = current_cuda_stream(in.device());
    if (bf16)
      fp8_encode_bf16_cuda(static_cast<const std::uint16_t*>(in.data_ptr()), e.layout, codes, scales, stream);
    else
      fp8_encode_cuda(in.data_ptr<float>(), e.layout, codes, scales, stream);
  } else if (in.is_cpu()) {
    const int threads = at::get_num_threads();
    if (bf16)
      fp8_encode_bf16(static_cast<const std::uint16_t*>(in.data_ptr()), e.layout, codes, scales, threads);
    else
      fp8_encode(in.data_ptr<float>(), e.layout, codes, scales, threads);
  } else {
    throw input_error("fp8 codec: tensors on " + in.device().str() + " are not supported (CPU or CUDA)");
  }
  return e;
}

torch::Tensor fp8_decode_tensor(const fp8_encoded& e, torch::ScalarType dtype) {
  const fp8_layout& l = e.layout;
  if (e.codes.scalar_type() != torch::kFloat8_e4m3fn || e.codes.dim() != 2 || e.codes.size(0) != l.rows ||
      e.codes.size(1) != l.cols || e.scales.scalar_type() != torch::kFloat32 || e.scales.numel() != l.scales() ||
      e.scales.device() != e.codes.device())
    throw input_error("fp8 codec: codes " + shape_text(e.codes.sizes().vec()) + " and scales " +
                      shape_text(e.scales.sizes().vec()) +
                      " do not fit a [" + std::to_string(l.rows) + ", " + std::to_string(l.cols) + "] tensor");
  torch::NoGradGuard no_grad;
  auto codes_t = e.codes.contiguous();
  auto scales_t = e.scales.contiguous();
  const auto out_dtype = codec_dtype(dtype) ? dtype : torch::kFloat32;
  auto out = torch::empty({l.rows, l.cols}, torch::TensorOptions().device(codes_t.device()).dtype(out_dtype));
  const auto* codes = static_cast<const std::uint8_t*>(codes_t.data_ptr());
  const auto* scales = scales_t.data_ptr<float>();
  const bool bf16 = out_dtype == torch::kBFloat16;
  if (codes_t.is_cuda()) {
    c10::DeviceGuard guard(codes_t.device());
    void* stream = current_cuda_stream(codes_t.device());
    if (bf16)
      fp8_decode_bf16_cuda(codes, scales, l, static_cast<std::uint16_t*>(out.data_ptr()), stream);
    else
      fp8_decode_cuda(codes, scales, l, out.data_ptr<float>(), stream);
  } else {
    const int threads = at::get_num_threads();
    if (bf16)
      fp8_decode_bf16(codes, scales, l, static_cast<std::uint16_t*>(out.data_ptr()), threads);
    else
      fp8_decode(codes, scales, l, out.data_ptr<float>(), threads);
  }
  return out_dtype == dtype ? out : out.to(dtype);
}

fp8_weights fp8_encode_weights(const torch::OrderedDict<std::string, torch::Tensor>& weights,
                               const fp8_weights_config& config) {
  config.validate();
  fp8_weights out;
  out.tensors.reserve(weights.size());
  for (const auto& item : weights) {
    const torch::Tensor& t = item.value();
    fp8_weight w;
    w.name = item.key();
    w.dtype = t.scalar_type();
    out.original_bytes += bytes_of(t);
    if (t.is_floating_point() && config.selects(w.name, t.dim())) {
      w.encoded = fp8_encode_tensor(t, config.scaling_mode(), config.block_size);
      out.encoded_bytes += bytes_of(w.encoded->codes) + bytes_of(w.encoded->scales);
      ++out.quantized_count;
    } else {
      w.raw = t;
      out.encoded_bytes += bytes_of(t);
    }
    out.tensors.push_back(std::move(w));
  }
  return out;
}

torch::OrderedDict<std::string, torch::Tensor> fp8_decode_weights(const fp8_weights& w) {
  torch::OrderedDict<std::string, torch::Tensor> out;
  out.reserve(w.tensors.size());
  for (const auto& t : w.tensors) out.insert(t.name, t.encoded ? fp8_decode_tensor(*t.encoded, t.dtype) : t.raw);
  return out;
}

}  // namespace troupe
