// libFuzzer target for the external-environment protocol decoder: any bytes must
// either decode, and then survive an encode/decode round trip unchanged, or be rejected
// with input_error. Built and run by scripts/fuzz.sh env_protocol.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.hpp"
#include "environments/external/env_protocol.hpp"

namespace {

using namespace troupe::env_protocol;

bool same(const reply& a, const reply& b) {
  if (a.type != b.type || a.id != b.id) return false;
  if (a.type == "step_result")
    return a.result.next.text == b.result.next.text && a.result.next.stop_strings == b.result.next.stop_strings &&
           a.result.done == b.result.done && a.result.info == b.result.info && a.result.rewards.size() == b.result.rewards.size();
  if (a.type == "observation") return a.episode == b.episode && a.obs.text == b.obs.text;
  if (a.type == "error") return a.code == b.code && a.message == b.message;
  if (a.type == "welcome") return a.protocol == b.protocol && a.environments.size() == b.environments.size();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  limits lim;
  lim.max_frame_bytes = 1 << 16;
  lim.max_entries = 64;
  std::string again;
  try {
    reply r = decode_reply(frame, lim);
    encode(r, again);
    if (!same(r, decode_reply(again))) __builtin_trap();
  } catch (const troupe::input_error&) {
  }
  try {
    request q = decode_request(frame, lim);
    encode(q, again);
    request back = decode_request(again);
    if (back.type != q.type || back.id != q.id || back.action != q.action || back.t.metadata != q.t.metadata)
      __builtin_trap();
  } catch (const troupe::input_error&) {
  }
  return 0;
}
