// The reward actor: turns an episode's verdicts into named reward components and their
// weighted total (rewards/reward.hpp).
//   components = the environment's (e.g. correct, format)
//              + "rail/<name>" = -penalty for each penalize verdict
//              + "rail/blocked" = 1 if a rail blocked the output
//   total      = reward_combiner's weighted sum; a blocked output or a failed episode
//                scores `failure_reward` instead.
//
// Protocol:
//   (score_atom, reward_request) -> reward_result
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/protocol/reward.hpp"
#include "rewards/reward.hpp"

namespace troupe {

reward_actor spawn_reward_actor(caf::actor_system& sys, const reward_section& cfg, double failure_reward = 0.0);

// The computation the actor runs (plain, for tests and reuse).
reward_result score_episode(const reward_combiner& combiner, const reward_request& req, double failure_reward);

}  // namespace troupe
