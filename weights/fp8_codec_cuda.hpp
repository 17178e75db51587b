// The FP8 codec of fp8_codec.hpp on a CUDA device: the same layout, and bit for bit the
// same codes and scales as the CPU (both compile fp8_e4m3.hpp's element functions; the
// block amax is a max of finite magnitudes, which no reduction order can change).
//
// Pointers are device pointers; `stream` is a cudaStream_t (nullptr: the legacy default
// stream). The calls are asynchronous on that stream. Built from fp8_codec.cu when
// troupe is configured with a CUDA toolkit; otherwise each call throws system_error.
// Errors from the CUDA runtime are thrown as system_error naming the call.
#pragma once

#include <cstdint>

#include "weights/fp8_codec.hpp"

namespace troupe {

// Whether this build has the kernels and the process sees at least one CUDA device.
bool fp8_cuda_available();

void fp8_encode_cuda(const float* x, const fp8_layout& layout, std::uint8_t* codes, float* scales,
                     void* stream = nullptr);
void fp8_encode_bf16_cuda(const std::uint16_t* x, const fp8_layout& layout, std::uint8_t* codes, float* scales,
                          void* stream = nullptr);
void fp8_decode_cuda(const std::uint8_t* codes, const float* scales, const fp8_layout& layout, float* out,
                     void* stream = nullptr);
void fp8_decode_bf16_cuda(const std::uint8_t* codes, const float* scales, const fp8_layout& layout,
                          std::uint16_t* out, void* stream = nullptr);

}  // namespace troupe
