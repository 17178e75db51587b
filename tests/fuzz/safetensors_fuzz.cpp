// libFuzzer target for the safetensors header parser: any bytes must either parse into
// views that lie inside the input, or be rejected with input_error. Built and run by
// scripts/fuzz.sh safetensors.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.hpp"
#include "policies/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> bytes(size);
  if (size > 0) std::memcpy(bytes.data(), data, size);
  try {
    troupe::safetensors_file file = troupe::safetensors_file::from_bytes(std::move(bytes), "fuzz.safetensors");
    // Touch every byte of every view, so that the sanitizers see a view that leaves
    // the buffer, and check the bookkeeping agrees with itself.
    unsigned sum = 0;
    for (const auto& name : file.names()) {
      const troupe::st_tensor_view& v = file.tensor(name);
      for (std::size_t i = 0; i < v.size_bytes; ++i) sum += static_cast<unsigned>(v.data[i]);
      if (v.name != name || !file.contains(name)) __builtin_trap();
    }
    if (sum == 0xdeadbeef) return 0;  // keeps the loop from being optimised away
  } catch (const troupe::input_error&) {
  }
  return 0;
}
