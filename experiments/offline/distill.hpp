// The on-policy distillation experiment (`experiment: distill`): the student (the
// policy) samples completions to arithmetic prompts, a bigger teacher trained by troupe
// (distill.teacher, a checkpoint) scores every sampled position with its top-k
// next-token logprobs, and the student learns to match them (losses.hpp's
// distillation_loss: forward, reverse or mixed KL over the teacher's top k). Actors:
//   coordinator  this experiment's loop, a blocking actor on the caller's thread
//   generator    actors/protocol/generator.hpp             the student's samples (synced after each step)
//   generator    actors/protocol/generator.hpp             the teacher's greedy answers, for its accuracy
//   trainer      actors/protocol/trainer.hpp         student, optimizer, teacher scoring
//   store        actors/store_actor.hpp           metrics and checkpoints
// Held-out evaluation (greedy accuracy of student and teacher, the student's KL to the
// teacher on its own greedy answers) at step 0, every distill.eval_every steps and at
// the end. Lives in the torch plugin (torch_plugin().run_distill).
#pragma once

namespace troupe {

struct experiment_config;
struct experiment_context;
struct experiment_outcome;

// Throws input_error naming the key for settings the experiment cannot honour (no
// teacher, top-k above the vocabulary, a non-arithmetic environment, ...).
void validate_distill(const experiment_config& cfg);

experiment_outcome run_distill(experiment_context& ctx);

}  // namespace troupe
