#include "actors/guardrail_actor.hpp"

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/errors.hpp"
#include "actors/message_types.hpp"

namespace troupe {

namespace {

caf::behavior guardrail_actor(caf::event_based_actor* self, std::shared_ptr<std::vector<std::unique_ptr<rail>>> rails) {
  convert_exceptions(self);
  return {
    [rails](check_atom, rail_stage stage, const std::string& text) {
      std::vector<rail_verdict> out;
      for (const auto& r : *rails) {
        out.push_back(r->check(stage, text));
        if (out.back().action == rail_action::block) break;
      }
      return out;
    },
  };
}

}  // namespace

caf::actor spawn_guardrail_actor(caf::actor_system& sys, const guardrails_section& cfg) {
  return sys.spawn(guardrail_actor, std::make_shared<std::vector<std::unique_ptr<rail>>>(make_rails(cfg)));
}

}  // namespace troupe
