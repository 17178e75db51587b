#include "guardrails/rail.hpp"

#include "guardrails/rails_file.hpp"

#include <algorithm>
#include <sstream>
#include <stdexcept>

#include "core/error.hpp"

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

std::unique_ptr<configured_rail> max_length_rail(std::size_t max_chars, double penalty) {
  std::ostringstream yaml;
  yaml.precision(17);
  yaml << "output:\n  - {name: max_length, type: length, max_chars: " << max_chars << ", on_trigger: ";
  if (penalty > 0) yaml << "{action: penalize, weight: " << penalty << "}}\n";
  else yaml << "block}\n";
  auto file = build_rails_file(parse_config_text(yaml.str(), "guardrails.max_output_chars"));
  return std::move(file.output.front());
}

// The model that rails are built against when only their config is checked.
struct never_asked final : logprob_scorer, guard_model {
  std::vector<double> token_logprobs(const std::string&) override { throw std::logic_error("no model: config check only"); }
  std::string answer(const std::string&) override { throw std::logic_error("no model: config check only"); }
};

}  // namespace

std::unique_ptr<rail> make_max_length_rail(std::size_t max_chars, double penalty) {
  return max_length_rail(max_chars, penalty);
}

rails_file make_rails(const guardrails_section& g, const rail_services& services) {
  rails_file out;
  if (!g.rails_file.empty()) {
    // Training judges completions: only the output rails are built. The input rails are
    // for serving (troupe chat checks them), and may ask a model that training lacks.
    auto root = load_config_tree(g.rails_file);
    if (root.type == config_node::kind::mapping)
      root.entries.erase(std::remove_if(root.entries.begin(), root.entries.end(),
                                        [](const auto& e) { return e.first == "input"; }),
                         root.entries.end());
    out = build_rails_file(root, services);
    out.source = g.rails_file;
  }
  if (g.max_output_chars > 0) {
    for (const auto& r : out.output)
      if (r->name() == "max_length")
        throw input_error(g.rails_file + ": the rail name 'max_length' is taken by the length rail of "
                          "guardrails.max_output_chars; rename the rail");
    out.output.insert(out.output.begin(),
                      max_length_rail(static_cast<std::size_t>(g.max_output_chars), g.length_penalty));
  }
  return out;
}

bool rails_need_model(const guardrails_section& g) {
  auto stand_in = std::make_shared<never_asked>();
  const auto rails = make_rails(g, {stand_in, stand_in});
  return std::any_of(rails.output.begin(), rails.output.end(), [](const auto& r) { return r->calls_model(); });
}

}  // namespace troupe
