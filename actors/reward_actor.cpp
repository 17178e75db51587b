#include "actors/reward_actor.hpp"

#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"

namespace troupe {

reward_result score_episode(const reward_combiner& combiner, const reward_request& req, double failure_reward) {
  reward_result out;
  out.components = req.env;
  bool blocked = false;
  for (const auto& v : req.verdicts) {
    if (v.action == rail_action::penalize) out.components["rail/" + v.rail] -= v.penalty;
    if (v.action == rail_action::block) blocked = true;
  }
  if (blocked) out.components["rail/blocked"] = 1.0;
  out.total = req.failed || blocked ? failure_reward : combiner.total(out.components);
  return out;
}

reward_actor spawn_reward_actor(caf::actor_system& sys, const reward_section& cfg, double failure_reward) {
  auto combiner = std::make_shared<reward_combiner>(cfg);  // throws input_error here, not in the actor
  return sys.spawn([combiner, failure_reward](reward_actor::pointer self) -> reward_actor::behavior_type {
    convert_exceptions(self);
    return {
      [combiner, failure_reward](score_atom, const reward_request& req) {
        return score_episode(*combiner, req, failure_reward);
      },
    };
  });
}

}  // namespace troupe
