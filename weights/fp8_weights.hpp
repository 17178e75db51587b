// FP8 for a named weights map (torch tensors): what a weight update sends when the
// codec is FP8. The selection (which tensors) is fp8_weights_config; the numerics are
// fp8_codec.hpp (CPU tensors) and fp8_codec_cuda.hpp (CUDA tensors, on LibTorch's current
// stream of the tensor's device), bit for bit the same.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "weights/fp8_codec.hpp"
#include "weights/fp8_weights_config.hpp"

namespace troupe {

// One encoded 2-D tensor, on the device of the tensor it came from.
struct fp8_encoded {
  torch::Tensor codes;   // [rows, cols] torch::kFloat8_e4m3fn
  torch::Tensor scales;  // [scale_rows, scale_cols] torch::kFloat32: x ~ float(code) * scale
  fp8_layout layout;
};

// Encodes a 2-D floating tensor (fp32 and bf16 directly, other floating types through
// fp32). Throws input_error for another rank or dtype.
fp8_encoded fp8_encode_tensor(const torch::Tensor& x, fp8_scaling scaling = fp8_scaling::block,
                              std::int64_t block = 128);
// Decodes into `dtype` (fp32 and bf16 directly, others through fp32), on the codes' device.
torch::Tensor fp8_decode_tensor(const fp8_encoded& e, torch::ScalarType dtype = torch::kFloat32);

// One entry of an encoded weights map: quantized (`encoded`) or kept as it was (`raw`).
struct fp8_weight {
  std::string name;
  torch::ScalarType dtype = torch::kFloat32;  // of the original; decoding gives it back
  std::optional<fp8_encoded> encoded;
  torch::Tensor raw;  // the caller's tensor itself (not a copy) when not quantized
};

struct fp8_weights {
  std::vector<fp8_weight> tensors;  // in the order of the map
  std::int64_t original_bytes = 0;  // of all tensors as given
  std::int64_t encoded_bytes = 0;   // codes + scales of the quantized, plus the raw ones
  std::int64_t quantized_count = 0;
};

// Encodes the tensors that `config` selects, keeps the others. Throws input_error for a
// config that fails its own checks (fp8_weights_config::describe).
fp8_weights fp8_encode_weights(const torch::OrderedDict<std::string, torch::Tensor>& weights,
                               const fp8_weights_config& config = {});
// The map back: quantized tensors decoded to their original dtype, raw ones as they are.
torch::OrderedDict<std::string, torch::Tensor> fp8_decode_weights(const fp8_weights& w);

}  // namespace troupe
