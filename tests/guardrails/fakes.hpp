// Fake models for the rails that ask one: fixed answers, a sleep past any timeout, a throw.
#pragma once

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "guardrails/model_interfaces.hpp"

namespace troupe::testing {

// Every token has the same logprob, so the perplexity is exp(-lp) whatever the text.
struct constant_scorer : logprob_scorer {
  explicit constant_scorer(double lp, std::chrono::milliseconds delay = {}) : lp_(lp), delay_(delay) {}
  std::vector<double> token_logprobs(const std::string& text) override {
    ++calls;
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    return std::vector<double>(std::max<std::size_t>(text.size() / 4, 1), lp_);
  }
  std::atomic<int> calls{0};

 private:
  double lp_;
  std::chrono::milliseconds delay_;
};

struct fixed_guard : guard_model {
  explicit fixed_guard(std::string answer, std::chrono::milliseconds delay = {}) : answer_(std::move(answer)), delay_(delay) {}
  std::string answer(const std::string& prompt) override {
    last_prompt = prompt;
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (answer_ == "throw") throw std::runtime_error("connection refused");
    return answer_;
  }
  std::string last_prompt;

 private:
  std::string answer_;
  std::chrono::milliseconds delay_;
};

}  // namespace troupe::testing
