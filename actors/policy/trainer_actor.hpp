// Spawning the trainer actor (protocol: actors/protocol/trainer.hpp). Torch side.
//
// One actor for every recipe, with the objective chosen at spawn: GRPO learns from
// rollouts (and runs its SFT warm start), SFT, DPO and distillation learn from token
// rows. Whatever the objective, the actor owns the policy, the trainer that updates it
// (algorithms/trainer.hpp, made on first use) and publishes, saves and restores them
// the same way.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <optional>

#include "actors/protocol/trainer.hpp"
#include "algorithms/algorithm_config.hpp"
#include "algorithms/data_parallel_options.hpp"
#include "policies/causal_lm.hpp"
#include "weights/fp8_weights_config.hpp"

namespace troupe {

// What (train_atom, ...) learns and which messages the actor answers:
//   grpo:    (train_atom, rollout_batch), (sft_atom, sft_batch)
//   sft, dpo, distill: (train_atom, token_rows), (eval_atom, token_rows)
enum class trainer_objective { grpo, sft, dpo, distill };

struct trainer_actor_options {
  trainer_objective objective = trainer_objective::grpo;
  trainer_section trainer;  // the objective's optimizer, schedule, microbatches (rows; even for dpo)
  std::int64_t pad_id = 0;

  // --- grpo ---
  clipped_pg_config loss;
  double temperature = 1.0;  // logprobs are log_softmax(logits / temperature), as sampled
  // The SFT warm start's own optimizer settings (a separate optimizer, no reference).
  trainer_section sft;
  // Set: published weights go through the FP8 codec (quantized, then dequantized), as
  // a generator receiving FP8 over a transport would hold them.
  std::optional<fp8_weights_config> fp8_sync;
  // world_size > 1: this actor is one data-parallel rank (distributed/data_parallel.hpp).
  // It joins the group when its first trainer is made (the first train, sft, save or
  // load message); each train/sft message then carries this rank's shard; metrics are
  // the global ones on every rank. Every rank must get every train/sft/save/load
  // message, in the same order. save writes on rank 0 only; load reads the checkpoint
  // on rank 0 only and broadcasts it (weights, optimizer state, step) to the others.
  data_parallel_options data_parallel;

  // --- dpo ---
  dpo_config dpo;
  // --- distill: the teacher that scores the student's samples (read only here) ---
  causal_lm teacher{nullptr};
  distillation_config distill;
};

// `policy` is trained in place (the caller keeps no other use of it). The frozen
// reference, where the objective has one (dpo; grpo with a KL penalty), is a copy of
// the policy as it is when the trainer is made. Validates the options first
// (input_error).
trainer_actor spawn_trainer_actor(caf::actor_system& sys, causal_lm policy, trainer_actor_options opts);

}  // namespace troupe
