#include "experiments/experiment.hpp"

#include "actors/torch_plugin.hpp"
#include "core/error.hpp"

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
    {"sft", "supervised fine-tuning on prompt/response or chat JSONL: trainer and store actors",
     [](experiment_context& ctx) { return torch_plugin().run_sft(ctx); },
     [](const experiment_config& cfg) { torch_plugin().validate_sft(cfg); },
     /*resumable=*/true, {}},
    {"dpo", "direct preference optimization (DPO / IPO) on prompt/chosen/rejected JSONL against a frozen reference",
     [](experiment_context& ctx) { return torch_plugin().run_dpo(ctx); },
     [](const experiment_config& cfg) { torch_plugin().validate_dpo(cfg); },
     /*resumable=*/true, {}},
    {"distill", "on-policy distillation: the student samples, a teacher checkpoint scores its top-k logprobs",
     [](experiment_context& ctx) { return torch_plugin().run_distill(ctx); },
     [](const experiment_config& cfg) { torch_plugin().validate_distill(cfg); },
     /*resumable=*/true, {}},
  };
  return all;
}

experiment_outcome run_guarded(const std::function<experiment_outcome()>& body, const std::function<void()>& stop) {
  experiment_outcome out;
  try {
    out = body();
  } catch (const input_error&) {
    stop();
    throw;
  } catch (const std::exception& e) {
    out = {"failed", e.what()};
  }
  stop();
  return out;
}

const experiment_entry* find_experiment(const std::string& name) {
  for (const auto& e : experiments())
    if (e.name == name) return &e;
  return nullptr;
}

}  // namespace troupe
