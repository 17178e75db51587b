// FP8 codec throughput (weights/fp8_codec.hpp): encode and decode of a 4096 x 4096
// weight, in bytes of the input per second (fp32 or bf16 in for encode, the codes for
// decode), against memcpy of the same bytes in the same run, and against torch's own
// cast to float8_e4m3fn (per-tensor scaled, no blocks) for scale. With a CUDA device, the
// kernels (fp8_codec_cuda.hpp) against a device-to-device copy of the same bytes;
// without one those are not registered.
//   build/bench/fp8_bench --benchmark_counters_tabular=true
// Arg: CPU threads. The CPU figures are per second of the process's CPU time (all its
// threads), which stays meaningful on a shared, loaded machine; the CUDA ones are per
// second of wall time.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstring>
#include <iostream>
#include <random>
#include <vector>

#include "weights/fp8_codec.hpp"
#include "weights/fp8_codec_cuda.hpp"
#include "weights/fp8_e4m3.hpp"

namespace {

using namespace troupe;

constexpr std::int64_t n_rows = 4096, n_cols = 4096, n = n_rows * n_cols;

const fp8_layout& layout() {
  static const fp8_layout l = fp8_layout::make(n_rows, n_cols);
  return l;
}

const std::vector<float>& weights_f32() {
  static const std::vector<float> x = [] {
    std::mt19937 rng(1);
    std::normal_distribution<float> d(0.0f, 0.02f);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& e : v) e = d(rng);
    return v;
  }();
  return x;
}

const std::vector<std::uint16_t>& weights_bf16() {
  static const std::vector<std::uint16_t> h = [] {
    std::vector<std::uint16_t> v(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = fp8::float_to_bf16(weights_f32()[i]);
    return v;
  }();
  return h;
}

void bytes(benchmark::State& state, std::int64_t per_iteration) {
  state.SetBytesProcessed(state.iterations() * per_iteration);
}

void memcpy_bytes(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<char> src(size, 1), dst(size);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), size);
    benchmark::ClobberMemory();
  }
  bytes(state, state.range(0));
}
BENCHMARK(memcpy_bytes)->Arg(n * 4)->Arg(n * 2)->Arg(n)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

void encode_fp32(benchmark::State& state) {
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n));
  std::vector<float> scales(static_cast<std::size_t>(layout().scales()));
  const auto threads = static_cast<int>(state.range(0));
  for (auto _ : state) fp8_encode(weights_f32().data(), layout(), codes.data(), scales.data(), threads);
  bytes(state, n * 4);
}
BENCHMARK(encode_fp32)->Arg(1)->Arg(2)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

void encode_bf16(benchmark::State& state) {
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n));
  std::vector<float> scales(static_cast<std::size_t>(layout().scales()));
  const auto threads = static_cast<int>(state.range(0));
  for (auto _ : state) fp8_encode_bf16(weights_bf16().data(), layout(), codes.data(), scales.data(), threads);
  bytes(state, n * 2);
}
BENCHMARK(encode_bf16)->Arg(1)->Arg(2)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

const fp8_tensor& encoded() {
  static const fp8_tensor t = fp8_encode(weights_f32(), layout());
  return t;
}

void decode_fp32(benchmark::State& state) {
  std::vector<float> out(static_cast<std::size_t>(n));
  const auto threads = static_cast<int>(state.range(0));
  for (auto _ : state) fp8_decode(encoded().codes.data(), encoded().scales.data(), layout(), out.data(), threads);
  bytes(state, n);
}
BENCHMARK(decode_fp32)->Arg(1)->Arg(2)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

void decode_bf16(benchmark::State& state) {
  std::vector<std::uint16_t> out(static_cast<std::size_t>(n));
  const auto threads = static_cast<int>(state.range(0));
  for (auto _ : state)
    fp8_decode_bf16(encoded().codes.data(), encoded().scales.data(), layout(), out.data(), threads);
  bytes(state, n);
}
BENCHMARK(decode_bf16)->Arg(1)->Arg(2)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

// torch's cast with one scale for the tensor: amax, divide, cast (three passes).
void torch_cast_fp32(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  auto x = torch::from_blob(const_cast<float*>(weights_f32().data()), {n_rows, n_cols}, torch::kFloat32);
  torch::NoGradGuard g;
  for (auto _ : state) {
    auto s = x.abs().max() / 448;
    auto codes = (x / s).to(torch::kFloat8_e4m3fn);
    benchmark::DoNotOptimize(codes.data_ptr());
  }
  bytes(state, n * 4);
}
BENCHMARK(torch_cast_fp32)->Arg(1)->Arg(2)->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);

// --- CUDA ------------------------------------------------------------------------------

constexpr int launches = 20;  // per timed iteration, then one synchronize

void cuda_copy(benchmark::State& state) {
  const auto size = state.range(0);
  auto src = torch::ones({size}, torch::dtype(torch::kUInt8).device(torch::kCUDA));
  auto dst = torch::empty_like(src);
  for (auto _ : state) {
    for (int i = 0; i < launches; ++i) dst.copy_(src);
    torch::cuda::synchronize();
  }
  bytes(state, size * launches);
}

void cuda_encode(benchmark::State& state) {
  const bool bf16 = state.range(0) == 2;
  auto x = torch::from_blob(const_cast<float*>(weights_f32().data()), {n_rows, n_cols}, torch::kFloat32)
               .to(torch::kCUDA)
               .to(bf16 ? torch::kBFloat16 : torch::kFloat32);
  auto codes = torch::empty({n_rows, n_cols}, torch::dtype(torch::kUInt8).device(torch::kCUDA));
  auto scales = torch::empty({layout().scales()}, torch::dtype(torch::kFloat32).device(torch::kCUDA));
  for (auto _ : state) {
    for (int i = 0; i < launches; ++i) {
      if (bf16)
        fp8_encode_bf16_cuda(static_cast<const std::uint16_t*>(x.data_ptr()), layout(),
                             codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>());
      else
        fp8_encode_cuda(x.data_ptr<float>(), layout(), codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>());
    }
    torch::cuda::synchronize();
  }
  bytes(state, n * state.range(0) * launches);
}

void cuda_decode(benchmark::State& state) {
  const bool bf16 = state.range(0) == 2;
  auto codes = torch::from_blob(const_cast<std::uint8_t*>(encoded().codes.data()), {n}, torch::kUInt8).to(torch::kCUDA);
  auto scales = torch::from_blob(const_cast<float*>(encoded().scales.data()), {layout().scales()}, torch::kFloat32)
                    .to(torch::kCUDA);
  auto out = torch::empty({n}, torch::dtype(bf16 ? torch::kBFloat16 : torch::kFloat32).device(torch::kCUDA));
  for (auto _ : state) {
    for (int i = 0; i < launches; ++i) {
      if (bf16)
        fp8_decode_bf16_cuda(codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>(), layout(),
                             static_cast<std::uint16_t*>(out.data_ptr()));
      else
        fp8_decode_cuda(codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>(), layout(), out.data_ptr<float>());
    }
    torch::cuda::synchronize();
  }
  bytes(state, n * launches);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  weights_bf16();  // the inputs are made before any timing
  encoded();
  if (fp8_cuda_available() && torch::cuda::is_available()) {
    // Arg: bytes per input element (4 fp32, 2 bf16); the copy moves as many bytes.
    benchmark::RegisterBenchmark("cuda_copy", cuda_copy)->Arg(n * 4)->Arg(n * 2)->Arg(n)->UseRealTime();
    benchmark::RegisterBenchmark("cuda_encode", cuda_encode)->Arg(4)->Arg(2)->UseRealTime();
    benchmark::RegisterBenchmark("cuda_decode", cuda_decode)->Arg(4)->Arg(2)->UseRealTime();
  } else {
    std::cerr << "fp8_bench: no CUDA device, the cuda_* benchmarks are not run\n";
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
