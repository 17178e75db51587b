// The models some rails ask, injected by whoever builds the rails: the perplexity
// (jailbreak) rail asks a logprob_scorer, the self-check rail a guard_model. Both are
// plain synchronous calls; the rail enforces its own `timeout_ms`, so an implementation
// (a model actor behind a request, a fake in a test) needs no timer of its own.
//
// Lifetime: a call that runs past its timeout is abandoned, not killed: it finishes on
// its own thread. That is why the rails hold these by shared_ptr.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

// Per-token log-probabilities of `text` under some language model (natural log), one
// per token after the first. May throw; a throw counts as a failed call.
struct logprob_scorer {
  virtual ~logprob_scorer() = default;
  virtual std::vector<double> token_logprobs(const std::string& text) = 0;
};

// A model that answers a prompt (the self-check rail's template with the text filled
// in) with a completion. May throw; a throw counts as a failed call.
struct guard_model {
  virtual ~guard_model() = default;
  virtual std::string answer(const std::string& prompt) = 0;
};

// The models a rails file may use. A rail whose model is missing is an error at load
// (or skipped, when the loader is told to).
struct rail_services {
  std::shared_ptr<logprob_scorer> scorer;
  std::shared_ptr<guard_model> guard;
};

}  // namespace troupe
