// FP8 (E4M3) codec for weight tensors, without torch: the CPU half of DESIGN.md
// "Weight sync and FP8". The element format and its rounding / saturation / NaN policy
// are in fp8_e4m3.hpp; the CUDA kernels with the same bits are in fp8_codec_cuda.hpp.
//
// A 2-D tensor x [rows, cols] (row-major, fp32 or bf16) is cut into blocks of
// block_rows x block_cols; the blocks on the right and bottom edges may be smaller
// (ragged). Each block b gets one fp32 inverse scale
//     scale[b] = amax_b / 448          (fp8::scale_for_amax; 1 for an all-zero block)
// where amax_b is the largest finite |x| in the block, and each element is coded as
//     code = fp8::encode_scaled(x, scale[b])        (E4M3 of x / scale[b])
// so that x ~ decode(code) * scale[b]. This is DeepSeek-V3's `weight_scale_inv` layout:
// codes [rows, cols], scales [ceil(rows / block_rows), ceil(cols / block_cols)], both
// row-major. Per-tensor scaling is the special case of one block covering the tensor.
//
// The result does not depend on the number of threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace troupe {

enum class fp8_scaling {
  block,   // block_rows x block_cols blocks (default 128 x 128)
  tensor,  // one scale for the whole tensor
};

// The geometry of an encoded tensor: its shape and its blocks.
struct fp8_layout {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t block_rows = 128;
  std::int64_t block_cols = 128;

  std::int64_t scale_rows() const { return (rows + block_rows - 1) / block_rows; }
  std::int64_t scale_cols() const { return (cols + block_cols - 1) / block_cols; }
  std::int64_t elements() const { return rows * cols; }
  std::int64_t scales() const { return scale_rows() * scale_cols(); }

  // Block layout for a [rows, cols] tensor: `block` x `block` blocks, or (tensor scaling)
  // one block of the whole tensor. Throws input_error for negative sizes or block < 1.
  static fp8_layout make(std::int64_t rows, std::int64_t cols, fp8_scaling scaling = fp8_scaling::block,
                         std::int64_t block = 128);
};

// An encoded tensor (on the host).
struct fp8_tensor {
  fp8_layout layout;
  std::vector<std::uint8_t> codes;  // [rows, cols] E4M3 codes, row-major
  std::vector<float> scales;        // [scale_rows, scale_cols] inverse scales, row-major
};

// Encode / decode into caller-owned buffers of the sizes `layout` gives (codes:
// elements(), scales: scales(), out: elements()). `threads` > 1 splits the work by
// rows of blocks across that many std::threads (small tensors stay on one).
void fp8_encode(const float* x, const fp8_layout& layout, std::uint8_t* codes, float* scales, int threads = 1);
void fp8_encode_bf16(const std::uint16_t* x, const fp8_layout& layout, std::uint8_t* codes, float* scales,
                     int threads = 1);
void fp8_decode(const std::uint8_t* codes, const float* scales, const fp8_layout& layout, float* out,
                int threads = 1);
void fp8_decode_bf16(const std::uint8_t* codes, const float* scales, const fp8_layout& layout, std::uint16_t* out,
                     int threads = 1);

// Owning conveniences over the above. `x.size()` must be layout.elements() (else
// input_error).
fp8_tensor fp8_encode(const std::vector<float>& x, const fp8_layout& layout, int threads = 1);
fp8_tensor fp8_encode_bf16(const std::vector<std::uint16_t>& x, const fp8_layout& layout, int threads = 1);
std::vector<float> fp8_decode(const fp8_tensor& t, int threads = 1);
std::vector<std::uint16_t> fp8_decode_bf16(const fp8_tensor& t, int threads = 1);

}  // namespace troupe
