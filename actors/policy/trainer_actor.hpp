// Spawning the trainer actor (protocol: actors/protocol/trainer.hpp). Torch side.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "algorithms/data_parallel_options.hpp"
#include "actors/protocol/trainer.hpp"
#include "algorithms/algorithm_config.hpp"
#include "policies/causal_lm.hpp"
#include "weights/fp8_weights_config.hpp"

#include <optional>

namespace troupe {

struct trainer_actor_options {
  trainer_section trainer;  // optimizer, schedule, microbatches (GRPO stage)
  clipped_pg_config loss;
  double temperature = 1.0;  // logprobs are log_softmax(logits / temperature), as sampled
  std::int64_t pad_id = 0;
  // The SFT stage's own optimizer settings (a separate optimizer, no reference).
  trainer_section sft;
  // Set: published weights go through the FP8 codec (quantized, then dequantized), as
  // a generator receiving FP8 over a transport would hold them.
  std::optional<fp8_weights_config> fp8_sync;
  // world_size > 1: this actor is one data-parallel rank (distributed/data_parallel.hpp). It
  // joins the group when its first trainer is made (the first train, sft, save or load
  // message); each train/sft message then carries this rank's shard; metrics are the
  // global ones on every rank. Every rank must get every train/sft/save/load message,
  // in the same order. save writes on rank 0 only; load reads the checkpoint on rank 0
  // only and broadcasts it (weights, optimizer state, step) to the others.
  data_parallel_options data_parallel;
};

// `policy` is trained in place (the caller keeps no other use of it).
caf::actor spawn_trainer_actor(caf::actor_system& sys, causal_lm policy, trainer_actor_options opts);

}  // namespace troupe
