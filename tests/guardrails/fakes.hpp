// Fake models for the rails that ask one: fixed answers, a throw, and a model held at a
// gate that the test opens only after it has its verdicts, so that "slower than the
// timeout" holds whatever the machine's speed (no sleeps).
#pragma once

#include <atomic>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

#include "guardrails/model_interfaces.hpp"

namespace troupe::testing {

// Every token has the same logprob, so the perplexity is exp(-lp) whatever the text.
struct constant_scorer : logprob_scorer {
  explicit constant_scorer(double lp, std::shared_future<void> gate = {}) : lp_(lp), gate_(std::move(gate)) {}
  std::vector<double> token_logprobs(const std::string& text) override {
    ++calls;
    if (gate_.valid()) gate_.wait();
    return std::vector<double>(std::max<std::size_t>(text.size() / 4, 1), lp_);
  }
  std::atomic<int> calls{0};

 private:
  double lp_;
  std::shared_future<void> gate_;
};

struct fixed_guard : guard_model {
  // With a `gate`, each answer waits until the gate opens.
  explicit fixed_guard(std::string answer, std::shared_future<void> gate = {})
      : answer_(std::move(answer)), gate_(std::move(gate)) {}
  std::string answer(const std::string& prompt) override {
    last_prompt = prompt;
    if (gate_.valid()) gate_.wait();
    if (answer_ == "throw") throw std::runtime_error("connection refused");
    return answer_;
  }
  std::string last_prompt;

 private:
  std::string answer_;
  std::shared_future<void> gate_;
};

}  // namespace troupe::testing
