#include "actors/experiment.hpp"

namespace troupe {

const std::vector<experiment_entry>& experiments() {
  static const std::vector<experiment_entry> all = {
    {"smoke", "a round trip through the actor system: supervised workers, the store, progress",
     run_smoke},
  };
  return all;
}

const experiment_entry* find_experiment(const std::string& name) {
  for (const auto& e : experiments())
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace troupe
