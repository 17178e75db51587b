// `troupe rails eval|check`: measure a rails file on labeled cases, or check one text.
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/table.hpp"
#include "guardrails/rails_eval.hpp"

namespace troupe::cli {

namespace {

constexpr const char* rails_usage = R"(usage: troupe rails eval FILE CASES.jsonl [--json] [--errors] [--skip-model-rails]
       troupe rails check FILE --stage input|output TEXT [--json] [--skip-model-rails]

  eval    run a rails file on labeled cases, one JSON object a line:
            {"text": "...", "stage": "input", "expect": "block", "category": "email"}
          and report, per category and overall, the detection rate of the "block"
          cases, the false-positive rate of the "allow" cases and the latency of a
          check (p50, p99); per rail its trigger rate and latency. A case is detected
          when a rail triggers with block, mask, rewrite or penalize (log is not).
  check   run the rails of one stage on TEXT and print the result and decision log

  --json              machine-readable output
  --errors            eval: also list the cases the rails got wrong
  --skip-model-rails  leave out rails that need a model (perplexity, self_check);
                      without it such a file is refused, as this command has no model
FILE is a rails file (docs/guardrails.md), e.g. examples/rails/default.yaml.
)";

struct rails_args {
  std::string action, file, cases, text, stage;
  bool json = false, errors = false, skip_model_rails = false;
};

rails_args parse_args(const args& a) {
  rails_args r;
  std::vector<std::string> pos;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& x = a[i];
    if (x == "--json") r.json = true;
    else if (x == "--errors") r.errors = true;
    else if (x == "--skip-model-rails") r.skip_model_rails = true;
    else if (x == "--stage") {
      if (i + 1 >= a.size()) throw input_error("rails: --stage needs input or output");
      r.stage = a[++i];
    } else if (x.rfind("--", 0) == 0) throw input_error("rails: unknown option '" + x + "' (see troupe rails --help)");
    else pos.push_back(x);
  }
  if (pos.empty()) throw input_error("rails: expected eval or check (see troupe rails --help)");
  r.action = pos[0];
  if (r.action == "eval") {
    if (pos.size() != 3) throw input_error("rails eval: expected FILE CASES.jsonl (see troupe rails --help)");
    r.file = pos[1], r.cases = pos[2];
  } else if (r.action == "check") {
    if (pos.size() != 3) throw input_error("rails check: expected FILE and one TEXT argument (quote it)");
    if (r.stage != "input" && r.stage != "output") throw input_error("rails check: --stage must be input or output");
    r.file = pos[1], r.text = pos[2];
  } else {
    throw input_error("rails: unknown action '" + r.action + "' (expected eval or check)");
  }
  return r;
}

std::string fmt(double x, const char* f = "%.3f") {
  char buf[32];
  std::snprintf(buf, sizeof(buf), f, x);
  return buf;
}

std::string rate(std::int64_t num, std::int64_t den) { return den == 0 ? "-" : fmt(double(num) / double(den)); }

nlohmann::json to_json(const category_stats& c) {
  return {{"category", c.category},       {"should_block", c.should_block},
          {"detected", c.detected},       {"detection_rate", c.should_block ? nlohmann::json(c.detection_rate()) : nullptr},
          {"should_allow", c.should_allow}, {"false_positives", c.false_positives},
          {"false_positive_rate", c.should_allow ? nlohmann::json(c.false_positive_rate()) : nullptr},
          {"latency_ms", {{"p50", c.latency.p50_ms}, {"p99", c.latency.p99_ms}}}};
}

// This command has no model to give the perplexity and self_check rails: they are
// refused, or left out with --skip-model-rails.
rails_engine load_engine(const rails_args& r) {
  rails_load_options o;
  o.skip_model_rails = true;
  auto file = load_rails_file(r.file, {}, o);
  if (!file.skipped.empty() && !r.skip_model_rails) {
    std::string list;
    for (const auto& s : file.skipped) list += (list.empty() ? "" : ", ") + s;
    throw input_error("rails: " + r.file + ": " + list +
                      "; this command has no model: pass --skip-model-rails to leave them out");
  }
  for (const auto& s : file.skipped) std::cerr << "troupe rails: skipped " << s << '\n';
  return rails_engine(std::move(file));
}

int eval(const rails_args& r) {
  auto engine = load_engine(r);
  auto cases = read_rails_cases(r.cases);
  auto rep = evaluate_rails(engine, cases);
  if (r.json) {
    nlohmann::json j;
    j["overall"] = to_json(rep.overall);
    j["categories"] = nlohmann::json::array();
    for (const auto& c : rep.categories) j["categories"].push_back(to_json(c));
    j["rails"] = nlohmann::json::array();
    for (const auto& s : rep.rails)
      j["rails"].push_back({{"rail", s.rail}, {"stage", to_string(s.stage)}, {"checks", s.checks},
                            {"triggers", s.triggers},
                            {"latency_ms", {{"p50", s.latency.p50_ms}, {"p99", s.latency.p99_ms}}}});
    if (r.errors) {
      j["errors"] = nlohmann::json::array();
      for (const auto& e : rep.errors)
        j["errors"].push_back({{"line", e.c.line}, {"category", e.c.category},
                               {"expect", e.c.expect_block ? "block" : "allow"}, {"triggered", e.triggered}});
    }
    std::cout << j.dump(2) << '\n';
    return 0;
  }
  text_table t;
  t.header = {"category", "block cases", "detected", "detection", "allow cases", "false pos.", "FP rate", "p50 ms", "p99 ms"};
  auto row = [&](const category_stats& c) {
    t.rows.push_back({c.category, std::to_string(c.should_block), std::to_string(c.detected),
                      rate(c.detected, c.should_block), std::to_string(c.should_allow),
                      std::to_string(c.false_positives), rate(c.false_positives, c.should_allow),
                      fmt(c.latency.p50_ms), fmt(c.latency.p99_ms)});
  };
  for (const auto& c : rep.categories) row(c);
  row(rep.overall);
  t.print(std::cout);
  text_table rt;
  rt.header = {"rail", "stage", "checks", "triggers", "trigger rate", "p50 ms", "p99 ms"};
  for (const auto& s : rep.rails)
    rt.rows.push_back({s.rail, to_string(s.stage), std::to_string(s.checks), std::to_string(s.triggers),
                       rate(s.triggers, s.checks), fmt(s.latency.p50_ms), fmt(s.latency.p99_ms)});
  std::cout << '\n';
  rt.print(std::cout);
  if (r.errors && !rep.errors.empty()) {
    std::cout << '\n';
    for (const auto& e : rep.errors) {
      std::cout << r.cases << ':' << e.c.line << ": " << e.c.category << ": expected "
                << (e.c.expect_block ? "block, nothing triggered" : "allow, got");
      for (const auto& x : e.triggered) std::cout << "\n    " << x;
      std::cout << '\n';
    }
  }
  return 0;
}

int check(const rails_args& r) {
  auto engine = load_engine(r);
  auto res = engine.check(r.stage == "input" ? rail_stage::input : rail_stage::output, r.text);
  if (r.json) {
    nlohmann::json j = {{"action", to_string(res.action)}, {"text", res.text}, {"penalty", res.penalty},
                        {"latency_ms", res.latency_ms}};
    if (res.blocked()) j["refusal"] = res.refusal;
    j["log"] = nlohmann::json::array();
    for (const auto& d : res.log)
      j["log"].push_back({{"rail", d.rail}, {"type", d.type}, {"action", to_string(d.action)}, {"reason", d.reason},
                          {"note", d.note}, {"latency_ms", d.latency_ms}, {"stopped", d.stopped}});
    std::cout << j.dump(2) << '\n';
    return 0;
  }
  std::cout << "action   " << to_string(res.action) << '\n';
  if (res.blocked()) std::cout << "refusal  " << res.refusal << '\n';
  else std::cout << "text     " << res.text << '\n';
  if (res.penalty != 0) std::cout << "penalty  " << fmt(res.penalty, "%g") << '\n';
  text_table t;
  t.header = {"rail", "type", "action", "reason", "ms"};
  for (const auto& d : res.log) {
    std::string why = d.reason;
    if (!d.note.empty() && d.note != d.reason) why += (why.empty() ? "" : "; ") + d.note;
    t.rows.push_back({d.rail, d.type, d.stopped ? "stopped" : to_string(d.action), why, fmt(d.latency_ms)});
  }
  std::cout << '\n';
  t.print(std::cout);
  return 0;
}

}  // namespace

int cmd_rails(const args& a) {
  if (wants_help(a)) {
    std::cout << rails_usage;
    return 0;
  }
  auto r = parse_args(a);
  return r.action == "eval" ? eval(r) : check(r);
}

}  // namespace troupe::cli
