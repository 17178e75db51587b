// The guardrail actor's protocol (actors/guardrail_actor.hpp) as a type. Its messages
// are the rails' own types (guardrails/rails_engine.hpp).
#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <string>
#include <vector>

#include "actors/protocol/atoms.hpp"
#include "guardrails/rails_engine.hpp"

namespace troupe {

using guardrail_actor = caf::typed_actor<
  caf::replies_to<check_atom, rail_stage, std::string>::with<std::vector<rail_verdict>>,
  caf::replies_to<check_atom, detail_atom, rail_stage, std::string>::with<rails_result>,
  caf::replies_to<counters_atom>::with<std::vector<rail_counter>>>;

}  // namespace troupe
