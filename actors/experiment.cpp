#include "actors/experiment.hpp"

#include "actors/torch_plugin.hpp"

namespace troupe {

const std::vector<experiment_entry>& experiments() {
  static const std::vector<experiment_entry> all = {
    {"smoke", "a round trip through the actor system: supervised workers, the store, progress",
     run_smoke, {}, /*resumable=*/false, {}},
    {"grpo", "GRPO with a warm-start SFT stage: generator, env host, rails, reward and trainer actors",
     [](experiment_context& ctx) { return torch_plugin().run_grpo(ctx); },
     [](const experiment_config& cfg) { torch_plugin().validate_grpo(cfg); },
     /*resumable=*/true,
     [](experiment_context& ctx, const std::string& checkpoint) { return torch_plugin().eval_grpo(ctx, checkpoint); }},
  };
  return all;
}

const experiment_entry* find_experiment(const std::string& name) {
  for (const auto& e : experiments())
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace troupe
