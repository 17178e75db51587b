#include "guardrails/rails_eval.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace troupe {

namespace {

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where, bool required,
                         const std::string& fallback = "") {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) throw input_error(where + ": missing \"" + key + "\"");
    return fallback;
  }
  if (!it->is_string()) throw input_error(where + ": \"" + key + "\" must be a string, got " + it->type_name());
  return it->get<std::string>();
}

}  // namespace

std::vector<rails_case> read_rails_cases(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error("cases file '" + path + "': cannot read (" + errno_text(errno) + ")");
  std::vector<rails_case> out;
  std::string line;
  for (std::int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(n);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) throw input_error(where + ": not valid JSON");
    if (!j.is_object()) throw input_error(where + ": expected a JSON object, got " + std::string(j.type_name()));
    rails_case c;
    c.line = n;
    c.text = string_field(j, "text", where, true);
    const auto stage = string_field(j, "stage", where, true);
    if (stage != "input" && stage != "output")
      throw input_error(where + ": \"stage\" must be \"input\" or \"output\", got \"" + stage + "\"");
    c.stage = stage == "input" ? rail_stage::input : rail_stage::output;
    const auto expect = string_field(j, "expect", where, true);
    if (expect != "block" && expect != "allow")
      throw input_error(where + ": \"expect\" must be \"block\" or \"allow\", got \"" + expect + "\"");
    c.expect_block = expect == "block";
    c.category = string_field(j, "category", where, false, "uncategorized");
    out.push_back(std::move(c));
  }
  return out;
}

latency_summary summarize_latency(std::vector<double> ms) {
  latency_summary s;
  s.count = static_cast<std::int64_t>(ms.size());
  if (ms.empty()) return s;
  std::sort(ms.begin(), ms.end());
  auto rank = [&](double p) {
    auto k = static_cast<std::size_t>(std::ceil(p * static_cast<double>(ms.size())));
    return ms[std::min(ms.size(), std::max<std::size_t>(k, 1)) - 1];
  };
  s.p50_ms = rank(0.50);
  s.p99_ms = rank(0.99);
  return s;
}

rails_eval_report evaluate_rails(const rails_engine& engine, const std::vector<rails_case>& cases) {
  rails_eval_report rep;
  std::map<std::string, category_stats> cats;
  std::map<std::string, std::vector<double>> cat_ms, rail_ms;
  std::map<std::string, rail_stats> rails;
  std::vector<double> all_ms;
  rep.overall.category = "all";

  for (const auto& c : cases) {
    auto r = engine.check(c.stage, c.text);
    auto& cs = cats[c.category];
    cs.category = c.category;
    const bool hit = r.detected();
    for (auto* s : {&cs, &rep.overall}) {
      if (c.expect_block) {
        ++s->should_block;
        s->detected += hit ? 1 : 0;
      } else {
        ++s->should_allow;
        s->false_positives += hit ? 1 : 0;
      }
    }
    cat_ms[c.category].push_back(r.latency_ms);
    all_ms.push_back(r.latency_ms);
    for (const auto& d : r.log) {
      auto& rs = rails[d.rail];
      rs.rail = d.rail;
      rs.stage = c.stage;
      if (d.stopped) continue;
      ++rs.checks;
      rs.triggers += d.action != rail_action::allow ? 1 : 0;
      rail_ms[d.rail].push_back(d.latency_ms);
    }
    if (hit != c.expect_block) {
      rails_case_error e{c, {}};
      for (const auto& v : r.verdicts) e.triggered.push_back(v.rail + " (" + to_string(v.action) + "): " + v.reason);
      rep.errors.push_back(std::move(e));
    }
  }
  rep.overall.latency = summarize_latency(all_ms);
  for (auto& [name, cs] : cats) {
    cs.latency = summarize_latency(cat_ms[name]);
    rep.categories.push_back(cs);
  }
  for (auto stage : {rail_stage::input, rail_stage::output})
    for (const auto& r : engine.file().rails(stage)) {
      rail_stats s;
      s.rail = r->name();
      s.stage = stage;
      if (auto it = rails.find(r->name()); it != rails.end()) s = it->second;
      s.stage = stage;
      s.latency = summarize_latency(rail_ms[r->name()]);
      rep.rails.push_back(s);
    }
  return rep;
}

}  // namespace troupe
