// The `arithmetic` environment and its task generator: integer problems such as
// "12+34=" whose answer the policy writes as digits ("46"). Single-turn.
//
// Tasks are a pure function of (seed, split, index), so a run and its resume see the
// same problems. Train and eval splits never share a problem: each problem belongs to
// the eval split when a hash of (seed, problem) falls in the eval fraction, else to
// train, and each split samples only its own.
//
// Options (the `env.options` map): min_digits (1), max_digits (2), ops ("+-"; any of
// "+-*"), eval_fraction (0.1).
#pragma once

#include <cstdint>
#include <string>

#include "environments/environment.hpp"

namespace troupe {

struct arithmetic_options {
  int min_digits = 1;
  int max_digits = 2;
  std::string ops = "+-";
  double eval_fraction = 0.1;

  // Reads and validates `o`; input_error names the option ("env.options.max_digits").
  static arithmetic_options parse(const environment_options& o);
};

enum class split { train, eval };

class arithmetic_tasks {
 public:
  arithmetic_tasks(arithmetic_options opts, std::uint64_t seed);
  // The index-th task of a split. Deterministic.
  task at(split s, std::int64_t index) const;

 private:
  arithmetic_options opts_;
  std::uint64_t seed_;
};

class arithmetic_env : public environment {
 public:
  explicit arithmetic_env(const environment_options& options);
  observation reset(const task& t) override;
  // rewards: correct (1 if the integer equals the answer), format (1 if the action,
  // less its trailing newline, is exactly one integer).
  step_result step(const std::string& action) override;

 private:
  std::string answer_;
};

}  // namespace troupe
