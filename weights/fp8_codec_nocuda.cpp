// fp8_codec_cuda.hpp in a build without a CUDA toolkit: no device, and every call throws.
#include "core/error.hpp"
#include "weights/fp8_codec_cuda.hpp"

namespace troupe {
namespace {

[[noreturn]] void no_cuda() {
  throw system_error("fp8 codec: this troupe was built without CUDA (no toolkit at configure time)");
}

}  // namespace

bool fp8_cuda_available() { return false; }

void fp8_encode_cuda(const float*, const fp8_layout&, std::uint8_t*, float*, void*) { no_cuda(); }
void fp8_encode_bf16_cuda(const std::uint16_t*, const fp8_layout&, std::uint8_t*, float*, void*) { no_cuda(); }
void fp8_decode_cuda(const std::uint8_t*, const float*, const fp8_layout&, float*, void*) { no_cuda(); }
void fp8_decode_bf16_cuda(const std::uint8_t*, const float*, const fp8_layout&, std::uint16_t*, void*) { no_cuda(); }

}  // namespace troupe
