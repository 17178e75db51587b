// The reward actor's messages (actors/reward_actor.hpp): an episode's components and
// rail verdicts in, the weighted components and total out.
#pragma once

#include <vector>

#include "guardrails/rail.hpp"
#include "rewards/reward.hpp"

namespace troupe {

struct reward_request {
  reward_components env;              // the environment's components
  std::vector<rail_verdict> verdicts; // output rails
  bool failed = false;                // the episode failed (environment error)
};

struct reward_result {
  reward_components components;
  double total = 0;
};

}  // namespace troupe
