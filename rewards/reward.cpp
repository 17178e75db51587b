#include "rewards/reward.hpp"

#include <cmath>
#include <cstdlib>

#include "core/error.hpp"

namespace troupe {

reward_combiner::reward_combiner(const reward_section& cfg) {
  for (std::size_t i = 0; i < cfg.weights.size(); ++i) {
    const auto& pair = cfg.weights[i];
    const std::string where = "reward.weights[" + std::to_string(i) + "]";
    auto colon = pair.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw input_error(where + ": expected name:weight, got '" + pair + "'");
    const std::string name = pair.substr(0, colon), num = pair.substr(colon + 1);
    char* end = nullptr;
    double w = std::strtod(num.c_str(), &end);
    if (num.empty() || end != num.c_str() + num.size() || !std::isfinite(w))
      throw input_error(where + ": weight '" + num + "' is not a number");
    if (!weights_.emplace(name, w).second) throw input_error(where + ": component '" + name + "' is weighted twice");
  }
}

double reward_combiner::total(const reward_components& c) const {
  double sum = 0;
  for (const auto& [name, value] : c) {
    auto it = weights_.find(name);
    if (it != weights_.end()) sum += it->second * value;
  }
  return sum;
}

}  // namespace troupe
