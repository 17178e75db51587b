// Guardrails, the minimal form the flagship needs: a rail checks text at a stage
// (input to the model, or its output) and returns a verdict. The rails engine, rails
// files and the built-in rails (PII, regex, jailbreak heuristics...) are the Guardrails
// issue; this header is their seed and keeps their vocabulary.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config_binding.hpp"

namespace troupe {

enum class rail_stage { input, output };
enum class rail_action { allow, block, penalize, log };
const char* to_string(rail_action a);

struct rail_verdict {
  std::string rail;                       // the rail's name
  rail_action action = rail_action::allow;
  double penalty = 0;                     // for penalize: subtracted as reward component "rail/<name>"
  std::string reason;                     // empty when allowed
};

class rail {
 public:
  virtual ~rail() = default;
  virtual const std::string& name() const = 0;
  virtual rail_verdict check(rail_stage stage, const std::string& text) const = 0;
};

// Output longer than max_chars: penalize with `penalty` (or block when penalty is 0).
std::unique_ptr<rail> make_max_length_rail(std::size_t max_chars, double penalty);

// The `guardrails:` section of an experiment (only the length rail for now).
struct guardrails_section {
  std::int64_t max_output_chars = 0;  // 0: the length rail is off
  double length_penalty = 1.0;

  template <class V>
  void describe(V& v) {
    v.field("max_output_chars", max_output_chars, "output rail: penalize completions longer than this; 0 is off",
            at_least<std::int64_t>(0));
    v.field("length_penalty", length_penalty, "reward subtracted when the length rail triggers", at_least(0.0));
  }
};

// The rails `g` turns on, in check order.
std::vector<std::unique_ptr<rail>> make_rails(const guardrails_section& g);

}  // namespace troupe
