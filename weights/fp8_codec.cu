// CUDA kernels of the FP8 codec (fp8_codec_cuda.hpp). Three launches encode a tensor:
//   1. amax:   each CTA takes a tile of at most 32 x 128 elements inside one block, reduces
//              the finite |x| in warps (shuffles) then across warps (shared memory), and
//              atomicMax-es the fp32 bits into the block's slot. Non-negative floats order
//              like their bits, and max is exact, so the order of the reduction and of the
//              atomics cannot change the result.
//   2. scales: one thread per block turns its amax into fp8::scale_for_amax(amax), in
//              place (the scales buffer held the amax bits).
//   3. encode: one thread per 4 consecutive elements of a row, fp8::encode_scaled.
// Decoding is one elementwise launch. Element arithmetic is fp8_e4m3.hpp's, shared with
// the CPU codec, with the _rn intrinsics: this file must not be built with fast-math.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "weights/fp8_codec_cuda.hpp"
#include "weights/fp8_e4m3.hpp"

namespace troupe {
namespace {

constexpr int warps_per_cta = 8;
constexpr int cta_threads = 32 * warps_per_cta;
constexpr std::int64_t tile_rows = 32;
constexpr std::int64_t tile_cols = 128;
constexpr int per_thread = 4;  // elements per thread in the elementwise kernels

// fp8_layout without its host-only methods, for kernel arguments.
struct dims {
  std::int64_t rows, cols, block_rows, block_cols, scale_cols;
};

dims dims_of(const fp8_layout& l) { return {l.rows, l.cols, l.block_rows, l.block_cols, l.scale_cols()}; }

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const std::uint16_t* p) { return fp8::bf16_to_float(*p); }
__device__ __forceinline__ void store(float v, float* p) { *p = v; }
__device__ __forceinline__ void store(float v, std::uint16_t* p) { *p = fp8::float_to_bf16(v); }

template <class In>
__global__ void amax_kernel(const In* __restrict__ x, dims d, std::int64_t sub_x, std::int64_t sub_y,
                            unsigned int* __restrict__ amax) {
  const std::int64_t across = d.scale_cols * sub_x;
  const std::int64_t tx = blockIdx.x % across;
  const std::int64_t ty = blockIdx.x / across;
  const std::int64_t bj = tx / sub_x, bi = ty / sub_y;
  const std::int64_t c0 = bj * d.block_cols + (tx % sub_x) * tile_cols;
  const std::int64_t c1 = min(c0 + tile_cols, min((bj + 1) * d.block_cols, d.cols));
  const std::int64_t r0 = bi * d.block_rows + (ty % sub_y) * tile_rows;
  const std::int64_t r1 = min(r0 + tile_rows, min((bi + 1) * d.block_rows, d.rows));
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;

  unsigned int m = 0;
  for (std::int64_t r = r0 + warp; r < r1; r += warps_per_cta)
    for (std::int64_t c = c0 + lane; c < c1; c += 32)
      m = max(m, fp8::detail::bits(fp8::finite_abs(load(x + r * d.cols + c))));
  for (int offset = 16; offset > 0; offset >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, offset));

  __shared__ unsigned int per_warp[warps_per_cta];
  if (lane == 0) per_warp[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < warps_per_cta; ++w) m = max(m, per_warp[w]);
    if (m != 0) atomicMax(amax + bi * d.scale_cols + bj, m);
  }
}

__global__ void scale_kernel(float* scales, std::int64_t n) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) scales[i] = fp8::scale_for_amax(scales[i]);  // held the amax's bits
}

// Rows run over blockIdx.y and then stride by gridDim.y (at most 65535 rows per pass).
template <class In>
__global__ void encode_kernel(const In* __restrict__ x, dims d, const float* __restrict__ scales,
                              std::uint8_t* __restrict__ codes) {
  const std::int64_t c0 = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) * per_thread;
  if (c0 >= d.cols) return;
  for (std::int64_t r = blockIdx.y; r < d.rows; r += gridDim.y) {
    const float* srow = scales + (r / d.block_rows) * d.scale_cols;
    const std::int64_t base = r * d.cols;
#pragma unroll
    for (int k = 0; k < per_thread; ++k) {
      const std::int64_t c = c0 + k;
      if (c < d.cols) codes[base + c] = fp8::encode_scaled(load(x + base + c), srow[c / d.block_cols]);
    }
  }
}

template <class Out>
__global__ void decode_kernel(const std::uint8_t* __restrict__ codes, const float* __restrict__ scales, dims d,
                              Out* __restrict__ out) {
  const std::int64_t c0 = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) * per_thread;
  if (c0 >= d.cols) return;
  for (std::int64_t r = blockIdx.y; r < d.rows; r += gridDim.y) {
    const float* srow = scales + (r / d.block_rows) * d.scale_cols;
    const std::int64_t base = r * d.cols;
#pragma unroll
    for (int k = 0; k < per_thread; ++k) {
      const std::int64_t c = c0 + k;
      if (c < d.cols) store(fp8::decode_scaled(codes[base + c], srow[c / d.block_cols]), out + base + c);
    }
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw system_error(std::string("fp8 codec (CUDA): ") + what + ": " + cudaGetErrorString(e));
}

void check_layout(const fp8_layout& l) {
  if (l.rows < 0 || l.cols < 0 || l.block_rows < 1 || l.block_cols < 1)
    throw input_error("fp8 codec (CUDA): invalid layout [" + std::to_string(l.rows) + ", " +
                      std::to_string(l.cols) + "]");
}

dim3 elementwise_grid(const fp8_layout& l) {
  const std::int64_t per_cta = std::int64_t{cta_threads} * per_thread;
  return dim3(static_cast<unsigned>((l.cols + per_cta - 1) / per_cta),
              static_cast<unsigned>(std::min<std::int64_t>(l.rows, 65535)));
}

template <class In>
void encode(const In* x, const fp8_layout& l, std::uint8_t* codes, float* scales, void* stream) {
  check_layout(l);
  if (l.scales() == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const dims d = dims_of(l);
  check(cudaMemsetAsync(scales, 0, sizeof(float) * l.scales(), s), "cudaMemsetAsync");
  const std::int64_t sub_x = (l.block_cols + tile_cols - 1) / tile_cols;
  const std::int64_t sub_y = (l.block_rows + tile_rows - 1) / tile_rows;
  const std::int64_t tiles = l.scales() * sub_x * sub_y;
  if (tiles > 0x7fffffff) throw input_error("fp8 codec (CUDA): tensor too large for one launch");
  amax_kernel<<<static_cast<unsigned>(tiles), cta_threads, 0, s>>>(x, d, sub_x, sub_y,
                                                                   reinterpret_cast<unsigned int*>(scales));
  check(cudaGetLastError(), "amax kernel");
  scale_kernel<<<static_cast<unsigned>((l.scales() + 255) / 256), 256, 0, s>>>(scales, l.scales());
  check(cudaGetLastError(), "scale kernel");
  encode_kernel<<<elementwise_grid(l), cta_threads, 0, s>>>(x, d, scales, codes);
  check(cudaGetLastError(), "encode kernel");
}

template <class Out>
void decode(const std::uint8_t* codes, const float* scales, const fp8_layout& l, Out* out, void* stream) {
  check_layout(l);
  if (l.elements() == 0) return;
  decode_kernel<<<elementwise_grid(l), cta_threads, 0, static_cast<cudaStream_t>(stream)>>>(codes, scales,
                                                                                           dims_of(l), out);
  check(cudaGetLastError(), "decode kernel");
}

}  // namespace

bool fp8_cuda_available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

void fp8_encode_cuda(const float* x, const fp8_layout& l, std::uint8_t* codes, float* scales, void* stream) {
  encode(x, l, codes, scales, stream);
}
void fp8_encode_bf16_cuda(const std::uint16_t* x, const fp8_layout& l, std::uint8_t* codes, float* scales,
                          void* stream) {
  encode(x, l, codes, scales, stream);
}
void fp8_decode_cuda(const std::uint8_t* codes, const float* scales, const fp8_layout& l, float* out, void* stream) {
  decode(codes, scales, l, out, stream);
}
void fp8_decode_bf16_cuda(const std::uint8_t* codes, const float* scales, const fp8_layout& l, std::uint16_t* out,
                          void* stream) {
  decode(codes, scales, l, out, stream);
}

}  // namespace troupe
