// The DPO experiment (`experiment: dpo`): direct preference optimization on
// (prompt, chosen, rejected) triples (environments/datasets.hpp) against a frozen
// reference: the policy as DPO starts. It starts from dpo.init_from (a checkpoint) or
// the small model's initial weights, then, when sft.steps > 0, a warm-start SFT stage
// on the chosen responses (as GRPO's). The loss is losses.hpp's dpo_loss: sigmoid (DPO) or ipo, optional length
// averaging and an SFT term on the chosen response. Actors:
//   coordinator  this experiment's loop, a blocking actor on the caller's thread
//   trainer      actors/protocol/trainer.hpp          policy, optimizer and reference
//   store        actors/store_actor.hpp             metrics and checkpoints
// Held-out preference metrics (dpo/eval_*) at step 0, every dpo.eval_every steps and
// at the end; checkpoints every dpo.checkpoint_every steps and at the end.
// Lives in the torch plugin; main() reaches it through torch_plugin().run_dpo.
#pragma once

namespace troupe {

struct experiment_config;
struct experiment_context;
struct experiment_outcome;

// Throws input_error, naming the key or the data file:line, for settings or data the
// experiment cannot use; reads and tokenizes the data before a run directory exists.
void validate_dpo(const experiment_config& cfg);

experiment_outcome run_dpo(experiment_context& ctx);

}  // namespace troupe
