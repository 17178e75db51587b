// The GRPO experiment's trainer options from its config, in one place: the coordinator
// (experiments/grpo/grpo.cpp) and a remote data-parallel trainer rank (experiments/grpo/trainer_rank.cpp)
// build them alike (and the policy alike with load_policy, experiments/setup/policy_setup.hpp).
#pragma once

#include <cstdint>

#include "experiments/experiment_config.hpp"
#include "actors/policy/trainer_actor.hpp"

namespace troupe {

// The trainer actor's options: the trainer section for GRPO, the sft section's lr and
// microbatches (constant schedule) for the warm start, the loss, temperature and fp8
// weight sync. data_parallel stays off.
trainer_actor_options grpo_trainer_options(const experiment_config& cfg, std::int64_t pad_id);

}  // namespace troupe
