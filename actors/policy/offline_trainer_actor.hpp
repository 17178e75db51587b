// Spawning the offline trainer actor (protocol: actors/protocol/offline_trainer.hpp).
// Torch side.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/protocol/offline_trainer.hpp"
#include "algorithms/algorithm_config.hpp"
#include "policies/causal_lm.hpp"

namespace troupe {

enum class offline_objective { sft, dpo, distill };

struct offline_trainer_options {
  offline_objective objective = offline_objective::sft;
  trainer_section trainer;  // optimizer, schedule, microbatch_size (rows; even for dpo)
  dpo_config dpo;           // dpo only
  // distill only: the teacher that scores the student's samples (read only here), and
  // the loss.
  causal_lm teacher{nullptr};
  distillation_config distill;
  std::int64_t pad_id = 0;
};

// `policy` is trained in place (the caller keeps no other use of it). For dpo, a
// frozen copy of it as it is now becomes the reference. Validates the options first
// (input_error).
caf::actor spawn_offline_trainer_actor(caf::actor_system& sys, causal_lm policy, offline_trainer_options opts);

}  // namespace troupe
