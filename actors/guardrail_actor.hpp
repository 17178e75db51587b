// The guardrail actor: runs the rails of an experiment (guardrails/rail.hpp) on text
// and answers with every verdict. The reward actor turns penalize verdicts into reward
// components; the coordinator records all of them with the rollout.
//
// Protocol:
//   (check_atom, rail_stage, std::string text) -> std::vector<rail_verdict>
//       in rail order; stops after the first block (the rest would not run in an agent)
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "guardrails/rail.hpp"

namespace troupe {

caf::actor spawn_guardrail_actor(caf::actor_system& sys, const guardrails_section& cfg);

}  // namespace troupe
