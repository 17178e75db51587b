// The GRPO experiment (`experiment: grpo`): a warm-start SFT stage, then GRPO, run by
// actors in one process (DESIGN.md "One GRPO step"):
//   coordinator (this experiment's loop, a blocking actor on the caller's thread)
//   generator   actors/protocol/generator.hpp      samples G completions per prompt
//   env host    actors/env_host.hpp       judges each completion
//   guardrail   actors/guardrail_actor.hpp  output rails on each completion
//   reward      actors/reward_actor.hpp   components and the weighted total
//   trainer     actors/protocol/trainer.hpp  the update; publishes weights
//   store       actors/store_actor.hpp    metrics, rollouts, checkpoints
// Held-out evaluation (eval/pass@1 greedy, eval/pass@k sampled) runs at GRPO step 0,
// every grpo.eval_every steps and at the end; checkpoints every grpo.checkpoint_every
// steps and at the end, under <run>/checkpoints/step_NNNNNN.
// Lives in the torch plugin; main() reaches it through torch_plugin().run_grpo.
#pragma once

#include <string>

namespace troupe {

struct experiment_config;
struct experiment_context;
struct experiment_outcome;

// Throws input_error, naming the key, for settings the experiment cannot honour or
// that conflict (loss, advantages, trainer, sft, environment, policy).
void validate_grpo(const experiment_config& cfg);

experiment_outcome run_grpo(experiment_context& ctx);

// `troupe eval`: the held-out evaluation of the GRPO experiment (eval/pass@1, eval/pass@k
// on grpo.eval_prompts tasks of the eval split) for the policy weights at `checkpoint`
// (a checkpoint directory or any Hugging Face model directory of the config's shape),
// recorded in ctx's run at the checkpoint's step (from a step_NNNNNN name; else 0).
experiment_outcome eval_grpo(experiment_context& ctx, const std::string& checkpoint);

}  // namespace troupe
