#include "guardrails/configured_rail.hpp"

namespace troupe {

configured_rail::configured_rail(rail_common common, rail_stage stage) : common_(std::move(common)), stage_(stage) {}

rail_verdict configured_rail::check(rail_stage stage, const std::string& text) const {
  const stop_flag never{false};
  return check_or_stop(stage, text, never);
}

rail_verdict configured_rail::check_or_stop(rail_stage stage, const std::string& text, const stop_flag& stop) const {
  rail_verdict v;
  v.rail = common_.name;
  if (stage != stage_) return v;
  detection d = detect(text, stop);
  v.note = std::move(d.note);
  if (!d.triggered) return v;
  const auto& on = common_.on_trigger;
  v.reason = std::move(d.reason);
  if (on.action == "block") {
    v.action = rail_action::block;
    v.message = on.message;
  } else if (on.action == "penalize") {
    v.action = rail_action::penalize;
    v.penalty = on.weight;
  } else if (on.action == "log") {
    v.action = rail_action::log;
  } else if (on.action == "mask") {
    v.action = rail_action::mask;
    v.spans = std::move(d.spans);
  } else {  // rewrite
    v.action = rail_action::rewrite;
    v.spans = std::move(d.spans);
    for (auto& s : v.spans) s.replacement = on.replacement;
  }
  return v;
}

void rail_config_error(const config_node& n, const std::string& path, const std::string& what) {
  detail::fail(n, path, what);
}

const config_node& node_or_self(const rail_build& b, const char* key) {
  const config_node* n = b.node.find(key);
  return n != nullptr ? *n : b.node;
}

}  // namespace troupe
