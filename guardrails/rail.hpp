// Guardrails: a rail checks text at a stage (input to the model, or its output) and
// returns a verdict. This header is the vocabulary every part shares: the guardrail
// actor and the reward shaping use `rail` and `rail_verdict` directly; the rails engine
// (rails_engine.hpp) runs many rails from a rails file (rails_file.hpp) concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config_binding.hpp"
#include "guardrails/model_interfaces.hpp"

namespace troupe {

enum class rail_stage { input, output };
const char* to_string(rail_stage s);

// What a triggered rail asks for. New values are appended (actors serialize the enum
// as its number).
//   allow     nothing found
//   block     refuse: the engine stops the other rails and returns the rail's message
//   penalize  a reward component "rail/<name>" of -penalty while training; text passes
//   log       recorded only
//   mask      the rail's spans are replaced by typed placeholders ("[EMAIL]")
//   rewrite   the rail's spans are replaced by its configured replacement text
enum class rail_action { allow, block, penalize, log, mask, rewrite };
const char* to_string(rail_action a);

// A piece of the checked text that a rail found, [begin, end) in bytes, and what mask
// or rewrite puts in its place.
struct text_span {
  std::size_t begin = 0, end = 0;
  std::string replacement;
};

struct rail_verdict {
  std::string rail;                       // the rail's name
  rail_action action = rail_action::allow;
  double penalty = 0;                     // for penalize: subtracted as reward component "rail/<name>"
  std::string reason;                     // empty when allowed
  // Fields below are for the rails engine; they do not travel between processes.
  std::string message;                    // for block: the refusal shown instead of the text
  std::vector<text_span> spans;           // for mask and rewrite: what to replace
  // Something the decision log must show even when allowed, such as "guard model timed
  // out after 50 ms: fail-open".
  std::string note;
};

// Cooperative cancellation: the engine raises it when one rail blocks, and rails that
// take long (a guard model, a scorer, megabytes of text) stop early. A verdict returned
// after the flag was raised is discarded.
using stop_flag = std::atomic<bool>;

class rail {
 public:
  virtual ~rail() = default;
  virtual const std::string& name() const = 0;
  virtual rail_verdict check(rail_stage stage, const std::string& text) const = 0;
  // What the engine calls. Rails that can stop early override it; the default ignores
  // the flag.
  virtual rail_verdict check_or_stop(rail_stage stage, const std::string& text, const stop_flag& stop) const {
    (void)stop;
    return check(stage, text);
  }
};

// Output longer than max_chars: penalize with `penalty` (or block when penalty is 0). A
// rail of the `length` family named max_length (guardrails.max_output_chars).
std::unique_ptr<rail> make_max_length_rail(std::size_t max_chars, double penalty);

// The `guardrails:` section of an experiment.
struct guardrails_section {
  std::int64_t max_output_chars = 0;  // 0: the length rail is off
  double length_penalty = 1.0;
  std::string rails_file;             // empty: none; else its output rails shape rewards too
  // Training: what a blocked completion becomes. failure_reward: it gets
  // grpo.failure_reward and is trained on like any other; mask: it still counts in its
  // group's advantages, but its tokens are masked out of the loss.
  std::string on_block = "failure_reward";
  // The model that rails asking one (perplexity, self_check) ask while training: a model
  // directory, or empty for a frozen copy of the policy as the run starts.
  std::string model;

  template <class V>
  void describe(V& v) {
    v.field("max_output_chars", max_output_chars, "output rail: penalize completions longer than this; 0 is off",
            at_least<std::int64_t>(0));
    v.field("length_penalty", length_penalty, "reward subtracted when the length rail triggers", at_least(0.0));
    v.field("rails_file", rails_file,
            "a rails file (docs/guardrails.md) whose output rails also judge completions; empty is none");
    v.field("on_block", on_block, "training: a blocked completion gets grpo.failure_reward (failure_reward) or is "
            "masked out of the loss (mask)", one_of{"failure_reward", "mask"});
    v.field("model", model, "the guard model of rails that ask one (perplexity, self_check): a Hugging Face or troupe "
            "checkpoint directory; empty is a frozen copy of the policy as the run starts");
  }
};

// make_rails(g) (rails_file.hpp) builds the rails a guardrails section turns on.

}  // namespace troupe
