#include "weights/fp8_codec.hpp"

#include <algorithm>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "weights/fp8_e4m3.hpp"

namespace troupe {
namespace {

// The inner loops run over one row of one block (contiguous). They are compiled for
// AVX2 and for baseline x86-64, picked at load time (GCC's target_clones); the result
// is the same bits either way, since every step is exact or one IEEE operation.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TROUPE_FP8_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define TROUPE_FP8_CLONES
#endif

inline float load(float v) { return v; }
inline float load(std::uint16_t v) { return fp8::bf16_to_float(v); }

inline void store(float v, float* out) { *out = v; }
inline void store(float v, std::uint16_t* out) { *out = fp8::float_to_bf16(v); }

// Largest finite |x| of a run, as the bits of a non-negative float: their integer order
// is the float order, and an integer max reduction vectorizes where a float one (with
// its NaN rules) does not.
// (Signed: GCC 12 vectorizes this form of the select-then-max, not the unsigned one.)
template <class In>
inline std::uint32_t run_amax(const In* x, std::int64_t n) {
  std::int32_t m = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    auto a = static_cast<std::int32_t>(fp8::detail::bits(load(x[i])) & 0x7fffffffu);
    a = a < 0x7f800000 ? a : 0;
    m = m > a ? m : a;
  }
  return static_cast<std::uint32_t>(m);
}

template <class In>
inline void run_encode(const In* x, std::int64_t n, float scale, std::uint8_t* codes) {
  for (std::int64_t i = 0; i < n; ++i) codes[i] = fp8::encode_scaled(load(x[i]), scale);
}

template <class Out>
inline void run_decode(const std::uint8_t* codes, std::int64_t n, float scale, Out* out) {
  for (std::int64_t i = 0; i < n; ++i) store(fp8::decode_scaled(codes[i], scale), out + i);
}

TROUPE_FP8_CLONES std::uint32_t amax_f32(const float* x, std::int64_t n) { return run_amax(x, n); }
TROUPE_FP8_CLONES std::uint32_t amax_bf16(const std::uint16_t* x, std::int64_t n) { return run_amax(x, n); }
TROUPE_FP8_CLONES void encode_f32(const float* x, std::int64_t n, float s, std::uint8_t* c) { run_encode(x, n, s, c); }
TROUPE_FP8_CLONES void encode_bf16(const std::uint16_t* x, std::int64_t n, float s, std::uint8_t* c) {
  run_encode(x, n, s, c);
}
TROUPE_FP8_CLONES void decode_f32(const std::uint8_t* c, std::int64_t n, float s, float* out) {
  run_decode(c, n, s, out);
}
TROUPE_FP8_CLONES void decode_bf16(const std::uint8_t* c, std::int64_t n, float s, std::uint16_t* out) {
  run_decode(c, n, s, out);
}

inline std::uint32_t amax_run(const float* x, std::int64_t n) { return amax_f32(x, n); }
inline std::uint32_t amax_run(const std::uint16_t* x, std::int64_t n) { return amax_bf16(x, n); }
inline void encode_run(const float* x, std::int64_t n, float s, std::uint8_t* c) { encode_f32(x, n, s, c); }
inline void encode_run(const std::uint16_t* x, std::int64_t n, float s, std::uint8_t* c) { encode_bf16(x, n, s, c); }
inline void decode_run(const std::uint8_t* c, std::int64_t n, float s, float* out) { decode_f32(c, n, s, out); }
inline void decode_run(const std::uint8_t* c, std::int64_t n, float s, std::uint16_t* out) {
  decode_bf16(c, n, s, out);
}

// Below this many elements per thread, starting a thread costs more than it saves.
constexpr std::int64_t min_elements_per_thread = std::int64_t{1} << 18;

// Runs f(begin, end) over [0, n) split into at most `threads` contiguous parts, where
// each unit is worth `unit_elements` elements of work.
template <class F>
void split(std::int64_t n, std::int64_t unit_elements, int threads, const F& f) {
  std::int64_t by_size = std::max<std::int64_t>(1, n * unit_elements / min_elements_per_thread);
  std::int64_t parts = std::min<std::int64_t>({std::max(threads, 1), n, by_size});
  if (parts <= 1) {
    if (n > 0) f(std::int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(parts - 1));
  for (std::int64_t p = 1; p < parts; ++p)
    pool.emplace_back([&f, n, parts, p] { f(n * p / parts, n * (p + 1) / parts); });
  f(0, n / parts);
  for (auto& t : pool) t.join();
}

void check_layout(const fp8_layout& l) {
  if (l.rows < 0 || l.cols < 0 || l.block_rows < 1 || l.block_cols < 1)
    throw input_error("fp8 codec: invalid layout [" + std::to_string(l.rows) + ", " + std::to_string(l.cols) +
                      "] with blocks " + std::to_string(l.block_rows) + "x" + std::to_string(l.block_cols));
}

// One row of blocks at a time: the amax pass and the encoding pass over the same rows
// follow each other, so the second reads them from cache (128 rows of 4096 fp32 is 2 MiB).
template <class In>
void encode_impl(const In* x, const fp8_layout& l, std::uint8_t* codes, float* scales, int threads) {
  check_layout(l);
  const std::int64_t ncb = l.scale_cols();
  split(l.scale_rows(), l.block_rows * l.cols, threads, [&](std::int64_t bi0, std::int64_t bi1) {
    std::vector<std::uint32_t> amax(static_cast<std::size_t>(ncb));
    for (std::int64_t bi = bi0; bi < bi1; ++bi) {
      const std::int64_t r0 = bi * l.block_rows;
      const std::int64_t r1 = std::min(r0 + l.block_rows, l.rows);
      std::fill(amax.begin(), amax.end(), 0u);
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t bj = 0; bj < ncb; ++bj) {
          const std::int64_t c0 = bj * l.block_cols;
          const std::int64_t n = std::min(l.block_cols, l.cols - c0);
          amax[bj] = std::max(amax[bj], amax_run(x + r * l.cols + c0, n));
        }
      float* srow = scales + bi * ncb;
      for (std::int64_t bj = 0; bj < ncb; ++bj) srow[bj] = fp8::scale_for_amax(fp8::detail::from_bits(amax[bj]));
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t bj = 0; bj < ncb; ++bj) {
          const std::int64_t c0 = bj * l.block_cols;
          const std::int64_t n = std::min(l.block_cols, l.cols - c0);
          encode_run(x + r * l.cols + c0, n, srow[bj], codes + r * l.cols + c0);
        }
    }
  });
}

template <class Out>
void decode_impl(const std::uint8_t* codes, const float* scales, const fp8_layout& l, Out* out, int threads) {
  check_layout(l);
  const std::int64_t ncb = l.scale_cols();
  split(l.rows, l.cols, threads, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* srow = scales + (r / l.block_rows) * ncb;
      for (std::int64_t bj = 0; bj < ncb; ++bj) {
        const std::int64_t c0 = bj * l.block_cols;
        const std::int64_t n = std::min(l.block_cols, l.cols - c0);
        decode_run(codes + r * l.cols + c0, n, srow[bj], out + r * l.cols + c0);
      }
    }
  });
}

template <class In>
fp8_tensor encode_owned(const std::vector<In>& x, const fp8_layout& l, int threads) {
  check_layout(l);
  if (static_cast<std::int64_t>(x.size()) != l.elements())
    throw input_error("fp8 codec: " + std::to_string(x.size()) + " values for a [" + std::to_string(l.rows) + ", " +
                      std::to_string(l.cols) + "] tensor");
  fp8_tensor t;
  t.layout = l;
  t.codes.resize(static_cast<std::size_t>(l.elements()));
  t.scales.resize(static_cast<std::size_t>(l.scales()));
  encode_impl(x.data(), l, t.codes.data(), t.scales.data(), threads);
  return t;
}

template <class Out>
std::vector<Out> decode_owned(const fp8_tensor& t, int threads) {
  check_layout(t.layout);
  if (static_cast<std::int64_t>(t.codes.size()) != t.layout.elements() ||
      static_cast<std::int64_t>(t.scales.size()) != t.layout.scales())
    throw input_error("fp8 codec: " + std::to_string(t.codes.size()) + " codes and " +
                      std::to_string(t.scales.size()) + " scales do not fit their layout");
  std::vector<Out> out(static_cast<std::size_t>(t.layout.elements()));
  decode_impl(t.codes.data(), t.scales.data(), t.layout, out.data(), threads);
  return out;
}

}  // namespace

fp8_layout fp8_layout::make(std::int64_t rows, std::int64_t cols, fp8_scaling scaling, std::int64_t block) {
  fp8_layout l;
  l.rows = rows;
  l.cols = cols;
  if (scaling == fp8_scaling::tensor) {
    // One block covering the tensor (at least 1 x 1: an empty tensor has no scales).
    l.block_rows = std::max<std::int64_t>(rows, 1);
    l.block_cols = std::max<std::int64_t>(cols, 1);
  } else {
    l.block_rows = block;
    l.block_cols = block;
  }
  check_layout(l);
  return l;
}

void fp8_encode(const float* x, const fp8_layout& l, std::uint8_t* codes, float* scales, int threads) {
  encode_impl(x, l, codes, scales, threads);
}
void fp8_encode_bf16(const std::uint16_t* x, const fp8_layout& l, std::uint8_t* codes, float* scales, int threads) {
  encode_impl(x, l, codes, scales, threads);
}
void fp8_decode(const std::uint8_t* codes, const float* scales, const fp8_layout& l, float* out, int threads) {
  decode_impl(codes, scales, l, out, threads);
}
void fp8_decode_bf16(const std::uint8_t* codes, const float* scales, const fp8_layout& l, std::uint16_t* out,
                     int threads) {
  decode_impl(codes, scales, l, out, threads);
}

fp8_tensor fp8_encode(const std::vector<float>& x, const fp8_layout& l, int threads) {
  return encode_owned(x, l, threads);
}
fp8_tensor fp8_encode_bf16(const std::vector<std::uint16_t>& x, const fp8_layout& l, int threads) {
  return encode_owned(x, l, threads);
}
std::vector<float> fp8_decode(const fp8_tensor& t, int threads) { return decode_owned<float>(t, threads); }
std::vector<std::uint16_t> fp8_decode_bf16(const fp8_tensor& t, int threads) {
  return decode_owned<std::uint16_t>(t, threads);
}

}  // namespace troupe
