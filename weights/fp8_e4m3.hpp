// One FP8 E4M3 value: the element-level arithmetic that the CPU codec (fp8_codec.cpp)
// and the CUDA kernels (fp8_codec.cu) both compile, so the two produce the same bits.
//
// The format is OCP 8-bit floating point "E4M3" (torch's float8_e4m3fn): 1 sign bit,
// 4 exponent bits with bias 7, 3 mantissa bits, no infinities.
//   exponent 0:       subnormal, (-1)^s * m/8 * 2^-6 (m = 1..7; smallest 2^-9)
//   exponent 1..15:   normal,    (-1)^s * (1 + m/8) * 2^(e-7)
//   S.1111.111:       NaN (0x7f and 0xff); so the largest finite value is
//                     S.1111.110 = 1.75 * 2^8 = 448.
//
// Policy for values that are not ordinary (the same on CPU and CUDA):
//   - rounding is to nearest, ties to even (also into and within the subnormals);
//   - finite values beyond +-448 saturate to +-448 (code 0x7e / 0xfe), never NaN;
//   - +-inf also saturates to +-448 (E4M3 has no infinity);
//   - NaN encodes to NaN with its sign kept (0x7f or 0xff) and decodes to a quiet NaN
//     with that sign (0x7fc00000 or 0xffc00000);
//   - magnitudes at or below 2^-10 (half the smallest subnormal) become zero with the
//     sign kept; +-0 encode to 0x00 / 0x80 and decode to +-0.
// (torch's own fp32 -> float8_e4m3fn cast agrees bit for bit on |x| <= 448; beyond
// 464 it gives NaN where this saturates.)
//
// Scaled forms: encode_scaled(x, s) codes x / s, decode_scaled(c, s) is decode(c) * s,
// each one IEEE fp32 operation rounded to nearest (the CUDA side uses the _rn
// intrinsics, so neither fused multiply-add nor fast-math can change a bit). The sign
// and NaN-ness are taken from x itself, because CUDA returns a canonical NaN (sign
// dropped) from arithmetic on a NaN.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TROUPE_FP8_HD __host__ __device__ __forceinline__
#else
#define TROUPE_FP8_HD inline
#endif

namespace troupe::fp8 {

inline constexpr float e4m3_max = 448.0f;
inline constexpr std::uint8_t e4m3_nan = 0x7f;  // with the sign bit: 0xff

namespace detail {

TROUPE_FP8_HD std::uint32_t bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

TROUPE_FP8_HD float from_bits(std::uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

TROUPE_FP8_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

TROUPE_FP8_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

TROUPE_FP8_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

inline constexpr std::uint32_t max_bits = 0x43e00000u;          // 448.0f
inline constexpr std::uint32_t min_normal_bits = 0x3c800000u;   // 2^-6, E4M3's smallest normal
inline constexpr std::uint32_t subnormal_bias_bits = 0x46800000u;  // 2^14: its fp32 ulp is 2^-9

// The E4M3 code (without sign, 0..0x7e) of a non-negative fp32 given by its bits `a`
// (NaN excluded by the caller). Branch-free so loops over it vectorize.
TROUPE_FP8_HD std::uint32_t magnitude_code(std::uint32_t a) {
  a = a < max_bits ? a : max_bits;  // saturation (inf included)
  // Normal: drop 20 mantissa bits with round-to-nearest-even and rebias 127 -> 7; a
  // carry out of the mantissa moves into the exponent, as it should.
  std::uint32_t normal = (a - (120u << 23) + 0x7ffffu + ((a >> 20) & 1u)) >> 20;
  // Subnormal: adding 2^14 makes the FPU round the value to a multiple of 2^-9 (ties to
  // even); the low bits of the sum are then that multiple, 0..8 (8 = 2^-6, the
  // smallest normal's code).
  std::uint32_t sub = bits(add_rn(from_bits(a), from_bits(subnormal_bias_bits))) - subnormal_bias_bits;
  return a < min_normal_bits ? sub : normal;
}

}  // namespace detail

// The E4M3 code of x (no scaling).
TROUPE_FP8_HD std::uint8_t encode(float x) {
  std::uint32_t b = detail::bits(x);
  std::uint32_t sign = (b >> 24) & 0x80u;
  std::uint32_t a = b & 0x7fffffffu;
  std::uint32_t a_sat = a < detail::max_bits ? a : detail::max_bits;  // a NaN never reaches the FPU
  std::uint32_t m = detail::magnitude_code(a_sat);  // unconditionally: keeps the loop branch-free
  std::uint32_t code = a > 0x7f800000u ? std::uint32_t{e4m3_nan} : m;
  return static_cast<std::uint8_t>(sign | code);
}

// The E4M3 code of x / scale. REQUIRES: scale finite and > 0.
TROUPE_FP8_HD std::uint8_t encode_scaled(float x, float scale) {
  std::uint32_t b = detail::bits(x);
  std::uint32_t sign = (b >> 24) & 0x80u;
  bool nan = (b & 0x7fffffffu) > 0x7f800000u;
  std::uint32_t a = detail::bits(detail::div_rn(x, scale)) & 0x7fffffffu;
  std::uint32_t m = detail::magnitude_code(a);  // unconditionally: keeps the loop branch-free
  std::uint32_t code = nan ? std::uint32_t{e4m3_nan} : m;
  return static_cast<std::uint8_t>(sign | code);
}

// decode(code) * scale in fp32; NaN codes give a quiet NaN with the code's sign.
TROUPE_FP8_HD float decode_scaled(std::uint8_t code, float scale) {
  std::uint32_t c = code;
  std::uint32_t m7 = c & 0x7fu;
  std::uint32_t sign = (c & 0x80u) << 24;
  std::uint32_t normal = (m7 << 20) + (120u << 23);  // exponent e + 120 = (e - 7) + 127
  // Subnormals as m * 2^-9 rather than as fp32 subnormal bits: no denormal operands,
  // which are slow on some CPUs and flushed under some FPU settings.
  std::uint32_t sub = detail::bits(detail::mul_rn(static_cast<float>(static_cast<int>(m7 & 7u)), 0x1p-9f));
  float v = detail::from_bits((m7 >= 8u ? normal : sub) | sign);
  float out = detail::mul_rn(v, scale);
  return m7 == 0x7fu ? detail::from_bits(sign | 0x7fc00000u) : out;
}

TROUPE_FP8_HD float decode(std::uint8_t code) { return decode_scaled(code, 1.0f); }

// bf16 bits <-> fp32. bf16 -> fp32 is exact; fp32 -> bf16 rounds to nearest even and
// keeps a NaN a (quiet) NaN with its sign.
TROUPE_FP8_HD float bf16_to_float(std::uint16_t h) { return detail::from_bits(std::uint32_t{h} << 16); }

TROUPE_FP8_HD std::uint16_t float_to_bf16(float f) {
  std::uint32_t b = detail::bits(f);
  bool nan = (b & 0x7fffffffu) > 0x7f800000u;
  std::uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
  return static_cast<std::uint16_t>(nan ? ((b >> 16) | 0x40u) : rounded);
}

// The per-block inverse scale for a block whose largest finite magnitude is `amax`:
// amax / 448, so the block's largest value encodes to (about) 448. An all-zero block,
// or one so small that amax / 448 underflows to 0 in fp32, gets 1 (its codes are 0).
TROUPE_FP8_HD float scale_for_amax(float amax) {
  float s = detail::div_rn(amax, e4m3_max);
  return s > 0.0f ? s : 1.0f;
}

// |x| when finite, else 0: the amax ignores inf and NaN (they saturate / stay NaN).
TROUPE_FP8_HD float finite_abs(float x) {
  std::uint32_t a = detail::bits(x) & 0x7fffffffu;
  return detail::from_bits(a < 0x7f800000u ? a : 0u);
}

}  // namespace troupe::fp8
