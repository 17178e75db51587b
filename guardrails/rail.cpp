#include "guardrails/rail.hpp"

#include "guardrails/rails_file.hpp"

namespace troupe {

const char* to_string(rail_stage s) { return s == rail_stage::input ? "input" : "output"; }

const char* to_string(rail_action a) {
  switch (a) {
    case rail_action::allow: return "allow";
    case rail_action::block: return "block";
    case rail_action::penalize: return "penalize";
    case rail_action::log: return "log";
    case rail_action::mask: return "mask";
    case rail_action::rewrite: return "rewrite";
  }
  return "?";
}

namespace {

class max_length_rail : public rail {
 public:
  max_length_rail(std::size_t max_chars, double penalty) : max_(max_chars), penalty_(penalty) {}
  const std::string& name() const override { return name_; }
  rail_verdict check(rail_stage stage, const std::string& text) const override {
    rail_verdict v;
    v.rail = name_;
    if (stage != rail_stage::output || text.size() <= max_) return v;
    v.action = penalty_ > 0 ? rail_action::penalize : rail_action::block;
    v.penalty = penalty_;
    v.reason = std::to_string(text.size()) + " characters > " + std::to_string(max_);
    return v;
  }

 private:
  std::string name_ = "max_length";
  std::size_t max_;
  double penalty_;
};

}  // namespace

std::unique_ptr<rail> make_max_length_rail(std::size_t max_chars, double penalty) {
  return std::make_unique<max_length_rail>(max_chars, penalty);
}

std::vector<std::unique_ptr<rail>> make_rails(const guardrails_section& g, const rail_services& services) {
  std::vector<std::unique_ptr<rail>> out;
  if (g.max_output_chars > 0) out.push_back(make_max_length_rail(static_cast<std::size_t>(g.max_output_chars), g.length_penalty));
  if (!g.rails_file.empty()) {
    auto file = load_rails_file(g.rails_file, services);
    for (auto& r : file.output) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace troupe
