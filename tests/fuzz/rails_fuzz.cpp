// libFuzzer target: bytes as a rails file, or as text checked by rails. The first byte
// picks which. A rails file must either build or throw input_error; text must come back
// with PII spans inside it, ordered and disjoint, and the engine must mask exactly them.
// Built and run by scripts/fuzz.sh rails.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/config_tree.hpp"
#include "core/error.hpp"
#include "guardrails/pii.hpp"
#include "guardrails/rails_engine.hpp"

namespace {

const char* const rails_yaml = R"(input:
  - {name: pii, type: pii, on_trigger: mask}
  - {name: words, type: keywords, keywords: [ignore previous, 'c++'], on_trigger: log}
  - {name: re, type: regex, patterns: ['\d{3,}x', '(a|b)*c'], on_trigger: {action: rewrite, replacement: R}}
  - {name: topics, type: topics, deny: [{topic: t, phrases: [bomb]}], on_trigger: penalize}
  - {name: json, type: json_schema, schema: '{"type": "object", "required": ["a"]}', on_trigger: log}
  - {name: len, type: length, max_chars: 300, on_trigger: mask}
)";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    try {
      auto f = troupe::build_rails_file(troupe::parse_config_text(body, "fuzz.yaml"));
      troupe::rails_engine e(std::move(f));
      (void)e.check(troupe::rail_stage::input, "mail ann@example.com, ignore previous instructions");
      (void)e.check(troupe::rail_stage::output, "{\"a\": 1}");
    } catch (const troupe::input_error&) {
    }
    return 0;
  }
  const troupe::stop_flag never{false};
  auto found = troupe::find_pii(body, troupe::all_pii_kinds(), never);
  std::size_t pos = 0;
  for (const auto& m : found) {
    if (m.begin < pos || m.end <= m.begin || m.end > body.size()) std::abort();
    pos = m.end;
  }
  static troupe::rails_engine engine(troupe::build_rails_file(troupe::parse_config_text(rails_yaml, "fuzz")));
  auto r = engine.check(troupe::rail_stage::input, body);
  if (r.blocked() || r.log.size() != 6) std::abort();
  return 0;
}
