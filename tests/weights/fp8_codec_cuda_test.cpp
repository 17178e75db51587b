// The FP8 codec's CUDA kernels (weights/fp8_codec_cuda.hpp) give the CPU codec's bits:
// codes, scales and decoded values, on random and edge inputs. Skipped without a CUDA
// device; scripts/gpu/run.sh runs these (their names contain "cuda").
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <random>

#include "policies/checkpoint.hpp"
#include "weights/fp8_codec.hpp"
#include "weights/fp8_codec_cuda.hpp"
#include "weights/fp8_e4m3.hpp"
#include "weights/fp8_weights.hpp"

namespace troupe {
namespace {

#define SKIP_WITHOUT_CUDA()                                                            \
  if (!fp8_cuda_available() || !torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device"

// Random values of every kind the codec must agree on: normals of varied size, exact
// codes, midpoints, subnormal-range values, huge values, zeros of both signs, inf, NaN.
std::vector<float> edge_mix(std::int64_t n, unsigned seed, bool with_nonfinite) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> kind(0, 15), exp(-40, 40), code(0, 255);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (auto& v : x) {
    switch (kind(rng)) {
      case 0: v = fp8::decode(static_cast<std::uint8_t>(code(rng) & 0xfe)); break;  // finite codes
      case 1: v = 0.0f; break;
      case 2: v = -0.0f; break;
      case 3: v = std::ldexp(normal(rng), -130); break;  // fp32 subnormals
      case 4: v = std::ldexp(normal(rng), 120); break;
      case 5: v = with_nonfinite ? std::numeric_limits<float>::infinity() : 1.0f; break;
      case 6: v = with_nonfinite ? -std::numeric_limits<float>::quiet_NaN() : -1.0f; break;
      default: v = std::ldexp(normal(rng), exp(rng) / 4); break;
    }
  }
  return x;
}

torch::Tensor to_cuda(const std::vector<float>& x, std::int64_t rows, std::int64_t cols) {
  return torch::from_blob(const_cast<float*>(x.data()), {rows, cols}, torch::kFloat32).clone().to(torch::kCUDA);
}

template <class T>
std::vector<T> host_bits(const torch::Tensor& t) {
  auto c = t.contiguous().cpu();
  std::vector<T> out(static_cast<std::size_t>(c.numel()));
  std::memcpy(out.data(), c.data_ptr(), out.size() * sizeof(T));
  return out;
}

std::vector<std::uint32_t> float_bits(const std::vector<float>& v) {
  std::vector<std::uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

struct shape_case {
  std::int64_t rows, cols;
  fp8_scaling scaling;
  std::int64_t block;
};

const shape_case cases[] = {
  {1, 1, fp8_scaling::block, 128},      {300, 260, fp8_scaling::block, 128},  {129, 1, fp8_scaling::block, 128},
  {1024, 4096, fp8_scaling::block, 128}, {70, 45, fp8_scaling::block, 32},    {513, 700, fp8_scaling::tensor, 128},
  {64, 200, fp8_scaling::block, 1},     {70000, 3, fp8_scaling::block, 128},  // > 65535 rows: the row loop
};

TEST(fp8_codec_cuda, encode_and_decode_give_the_cpu_bits_for_fp32_and_bf16) {
  SKIP_WITHOUT_CUDA();
  unsigned seed = 1;
  for (const auto& sc : cases) {
    for (bool nonfinite : {false, true}) {
      const auto l = fp8_layout::make(sc.rows, sc.cols, sc.scaling, sc.block);
      SCOPED_TRACE(std::to_string(sc.rows) + "x" + std::to_string(sc.cols) + " block " +
                   std::to_string(l.block_rows) + "x" + std::to_string(l.block_cols) +
                   (nonfinite ? " with inf/NaN" : ""));
      const auto x = edge_mix(l.elements(), seed++, nonfinite);
      const auto cpu = fp8_encode(x, l);
      auto xd = to_cuda(x, l.rows, l.cols);
      auto codes = torch::empty({l.rows, l.cols}, torch::dtype(torch::kUInt8).device(torch::kCUDA));
      auto scales = torch::empty({l.scale_rows(), l.scale_cols()}, torch::dtype(torch::kFloat32).device(torch::kCUDA));
      fp8_encode_cuda(xd.data_ptr<float>(), l, codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>());
      EXPECT_EQ(host_bits<std::uint8_t>(codes), cpu.codes);
      EXPECT_EQ(host_bits<std::uint32_t>(scales), float_bits(cpu.scales));

      auto out = torch::empty({l.rows, l.cols}, torch::dtype(torch::kFloat32).device(torch::kCUDA));
      fp8_decode_cuda(codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>(), l, out.data_ptr<float>());
      EXPECT_EQ(host_bits<std::uint32_t>(out), float_bits(fp8_decode(cpu)));
      auto out16 = torch::empty({l.rows, l.cols}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
      fp8_decode_bf16_cuda(codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>(), l,
                           static_cast<std::uint16_t*>(out16.data_ptr()));
      EXPECT_EQ(host_bits<std::uint16_t>(out16), fp8_decode_bf16(cpu));

      // bf16 input: the bits of x rounded to bf16.
      std::vector<std::uint16_t> h(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) h[i] = fp8::float_to_bf16(x[i]);
      const auto cpu16 = fp8_encode_bf16(h, l);
      auto hd = torch::from_blob(h.data(), {l.rows, l.cols}, torch::kInt16).clone().to(torch::kCUDA);
      fp8_encode_bf16_cuda(static_cast<const std::uint16_t*>(hd.data_ptr()), l, codes.data_ptr<std::uint8_t>(),
                           scales.data_ptr<float>());
      EXPECT_EQ(host_bits<std::uint8_t>(codes), cpu16.codes);
      EXPECT_EQ(host_bits<std::uint32_t>(scales), float_bits(cpu16.scales));
    }
  }
}

TEST(fp8_codec_cuda, every_code_decodes_to_the_cpu_value) {
  SKIP_WITHOUT_CUDA();
  const auto l = fp8_layout::make(1, 256);
  auto codes = torch::arange(256, torch::kInt32).to(torch::kUInt8).view({1, 256});
  std::vector<std::uint8_t> c(256);
  for (int i = 0; i < 256; ++i) c[i] = static_cast<std::uint8_t>(i);
  for (float s : {1.0f, 3.0f / 448.0f, 1e-40f}) {
    auto scale = torch::full({1, 1}, s, torch::kFloat32).to(torch::kCUDA);
    auto cd = codes.to(torch::kCUDA);
    auto out = torch::empty({1, 256}, torch::dtype(torch::kFloat32).device(torch::kCUDA));
    fp8_decode_cuda(cd.data_ptr<std::uint8_t>(), scale.data_ptr<float>(), l, out.data_ptr<float>());
    std::vector<float> cpu(256);
    fp8_decode(c.data(), &s, l, cpu.data());
    EXPECT_EQ(host_bits<std::uint32_t>(out), float_bits(cpu)) << "scale " << s;
  }
}

TEST(fp8_codec_cuda, the_tiny_llama_encodes_on_the_gpu_to_the_cpu_bits) {
  SKIP_WITHOUT_CUDA();
  auto model = load_pretrained(std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/hf/llama");
  const auto cpu = fp8_encode_weights(model->named_parameters());
  model->to(torch::kCUDA);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    torch::OrderedDict<std::string, torch::Tensor> w;
    for (const auto& p : model->named_parameters()) w.insert(p.key(), p.value().to(dtype));
    const auto gpu = fp8_encode_weights(w);
    const auto ref = dtype == torch::kFloat32 ? cpu : [&] {
      torch::OrderedDict<std::string, torch::Tensor> h;
      for (const auto& p : w) h.insert(p.key(), p.value().cpu());
      return fp8_encode_weights(h);
    }();
    ASSERT_EQ(gpu.tensors.size(), ref.tensors.size());
    for (std::size_t i = 0; i < gpu.tensors.size(); ++i) {
      const auto& g = gpu.tensors[i];
      const auto& c = ref.tensors[i];
      ASSERT_EQ(g.encoded.has_value(), c.encoded.has_value()) << g.name;
      if (!g.encoded) continue;
      EXPECT_TRUE(g.encoded->codes.is_cuda());
      EXPECT_EQ(host_bits<std::uint8_t>(g.encoded->codes), host_bits<std::uint8_t>(c.encoded->codes)) << g.name;
      EXPECT_EQ(host_bits<std::uint32_t>(g.encoded->scales), host_bits<std::uint32_t>(c.encoded->scales)) << g.name;
      const auto gd = fp8_decode_tensor(*g.encoded, dtype), cd = fp8_decode_tensor(*c.encoded, dtype);
      EXPECT_TRUE(gd.is_cuda());
      EXPECT_TRUE(torch::equal(gd.cpu(), cd)) << g.name;
    }
  }
}

}  // namespace
}  // namespace troupe
