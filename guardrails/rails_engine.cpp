#include "guardrails/rails_engine.hpp"

#include <algorithm>
#include <chrono>
#include <future>
#include <stdexcept>

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

int strength(rail_action a) {
  switch (a) {
    case rail_action::allow: return 0;
    case rail_action::log: return 1;
    case rail_action::penalize: return 2;
    case rail_action::mask: return 3;
    case rail_action::rewrite: return 4;
    case rail_action::block: return 5;
  }
  return 0;
}

}  // namespace

rail_run run_rail(const rail& r, rail_stage stage, const std::string& text, stop_flag& stop) {
  rail_run out;
  const auto t0 = clock_type::now();
  out.verdict = r.check_or_stop(stage, text, stop);
  out.latency_ms = ms_since(t0);
  if (out.verdict.action == rail_action::block) stop.store(true);
  // A rail that saw the flag before it finished may have returned a partial verdict.
  else out.stopped = stop.load();
  return out;
}

bool rails_result::detected() const {
  return std::any_of(verdicts.begin(), verdicts.end(), [](const rail_verdict& v) {
    return v.action != rail_action::allow && v.action != rail_action::log;
  });
}

std::string apply_spans(const std::string& text, std::vector<text_span> spans) {
  std::stable_sort(spans.begin(), spans.end(), [](const text_span& a, const text_span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end - a.begin > b.end - b.begin;
  });
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  for (const auto& s : spans) {
    if (s.begin < pos || s.end > text.size() || s.end < s.begin) continue;  // overlaps a span already applied
    out.append(text, pos, s.begin - pos);
    out += s.replacement;
    pos = s.end;
  }
  out.append(text, pos, std::string::npos);
  return out;
}

rails_engine::rails_engine(rails_file file, rails_engine_options options)
    : file_(std::move(file)), options_(options),
      input_counts_(new counts[file_.input.size()]), output_counts_(new counts[file_.output.size()]) {}

rails_result rails_engine::check(rail_stage stage, const std::string& text) const {
  const auto t0 = clock_type::now();
  const auto& rails = file_.rails(stage);
  stop_flag stop{false};
  std::vector<rail_run> runs(rails.size());
  using mode = rails_engine_options::concurrency;
  const bool concurrent =
    rails.size() > 1 && (options_.mode == mode::always ||
                         (options_.mode == mode::automatic &&
                          (text.size() >= options_.concurrent_from_bytes ||
                           std::any_of(rails.begin(), rails.end(), [](const auto& r) { return r->calls_model(); }))));
  if (concurrent) {
    std::vector<std::future<rail_run>> pending;
    for (std::size_t i = 1; i < rails.size(); ++i)
      pending.push_back(std::async(std::launch::async, run_rail, std::cref(*rails[i]), stage, std::cref(text),
                                   std::ref(stop)));
    runs[0] = run_rail(*rails[0], stage, text, stop);
    for (std::size_t i = 1; i < rails.size(); ++i) runs[i] = pending[i - 1].get();
  } else {
    for (std::size_t i = 0; i < rails.size(); ++i) {
      if (stop.load()) {
        runs[i].stopped = true;
        continue;
      }
      runs[i] = run_rail(*rails[i], stage, text, stop);
    }
  }
  auto res = combine(stage, text, std::move(runs));
  res.latency_ms = ms_since(t0);
  return res;
}

rails_result rails_engine::combine(rail_stage stage, const std::string& text, std::vector<rail_run> runs) const {
  const auto& rails = file_.rails(stage);
  counts* cnt = stage == rail_stage::input ? input_counts_.get() : output_counts_.get();
  if (runs.size() != rails.size())
    throw std::logic_error("rails_engine::combine: " + std::to_string(runs.size()) + " runs for " +
                           std::to_string(rails.size()) + " rails");
  rails_result res;
  res.stage = stage;
  std::vector<text_span> spans;
  for (std::size_t i = 0; i < rails.size(); ++i) {
    auto& run = runs[i];
    rail_decision d;
    d.rail = rails[i]->name();
    d.type = rails[i]->type();
    d.latency_ms = run.latency_ms;
    d.stopped = run.stopped;
    if (run.stopped) {
      d.note = "stopped: another rail blocked";
      res.log.push_back(std::move(d));
      continue;
    }
    cnt[i].checks.fetch_add(1);
    auto& v = run.verdict;
    d.action = v.action;
    d.reason = v.reason;
    d.note = v.note;
    res.log.push_back(std::move(d));
    if (v.action == rail_action::allow) continue;
    cnt[i].triggers.fetch_add(1);
    if (strength(v.action) > strength(res.action)) res.action = v.action;
    if (v.action == rail_action::block && res.refusal.empty()) res.refusal = v.message.empty() ? "blocked" : v.message;
    if (v.action == rail_action::penalize) res.penalty += v.penalty;
    if (v.action == rail_action::mask || v.action == rail_action::rewrite)
      spans.insert(spans.end(), v.spans.begin(), v.spans.end());
    res.verdicts.push_back(std::move(v));
  }
  res.text = res.blocked() || spans.empty() ? text : apply_spans(text, std::move(spans));
  return res;
}

std::vector<rail_counter> rails_engine::counters() const {
  std::vector<rail_counter> out;
  for (auto stage : {rail_stage::input, rail_stage::output}) {
    const auto& rails = file_.rails(stage);
    const counts* cnt = stage == rail_stage::input ? input_counts_.get() : output_counts_.get();
    for (std::size_t i = 0; i < rails.size(); ++i)
      out.push_back({rails[i]->name(), stage, cnt[i].checks.load(), cnt[i].triggers.load()});
  }
  return out;
}

}  // namespace troupe
