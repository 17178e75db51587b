// The reward actor's messages (actors/reward_actor.hpp): an episode's components and
// rail verdicts in, the weighted components and total out; and its protocol as a type.
#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <vector>

#include "actors/protocol/atoms.hpp"

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

using reward_actor = caf::typed_actor<caf::replies_to<score_atom, reward_request>::with<reward_result>>;

}  // namespace troupe
