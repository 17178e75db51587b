// The SFT experiment (`experiment: sft`): supervised fine-tuning on prompt / response
// pairs or chat conversations (environments/datasets.hpp), the prompt tokens masked out
// of the loss, batches padded or packed (data.packing). Actors:
//   coordinator  this experiment's loop, a blocking actor on the caller's thread
//   trainer      actors/protocol/trainer.hpp          one optimizer step per batch
//   store        actors/store_actor.hpp             metrics and checkpoints
// Held-out loss (sft/eval_loss) at step 0, every sft.eval_every steps and at the end;
// checkpoints every sft.checkpoint_every steps and at the end, under
// <run>/checkpoints/step_NNNNNN, as GRPO writes them.
// Lives in the torch plugin; main() reaches it through torch_plugin().run_sft.
#pragma once

namespace troupe {

struct experiment_config;
struct experiment_context;
struct experiment_outcome;

// Throws input_error, naming the key or the data file:line, for settings or data the
// experiment cannot use. Reads and tokenizes the data, so a bad line is reported
// before a run directory exists.
void validate_sft(const experiment_config& cfg);

experiment_outcome run_sft(experiment_context& ctx);

}  // namespace troupe
