// Rewards: named components for one finished episode, combined into the scalar the
// advantages use. Components come from the environment's verdict (e.g. "correct",
// "format") and from guardrail penalties (guardrails/, as rail/<name>); every component is kept for logging, and the total is their weighted
// sum with weights from the experiment's `reward.weights` (a component without a
// weight counts with 0 and is logged only).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/config_binding.hpp"

namespace troupe {

using reward_components = std::map<std::string, double>;

struct reward_section {
  // "name:weight" pairs; the default rewards correctness only.
  std::vector<std::string> weights = {"correct:1.0"};

  template <class V>
  void describe(V& v) {
    v.field("weights", weights, "component weights as name:weight; unlisted components are logged, not summed");
  }
};

class reward_combiner {
 public:
  // Throws input_error naming reward.weights[i] for a malformed pair or a duplicate name.
  explicit reward_combiner(const reward_section& cfg);
  // The weighted sum of `c`.
  double total(const reward_components& c) const;
  const std::map<std::string, double>& weights() const { return weights_; }

 private:
  std::map<std::string, double> weights_;
};

}  // namespace troupe
