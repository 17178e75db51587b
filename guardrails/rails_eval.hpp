// Measuring a rails file on labeled cases (what `troupe rails eval` prints and the
// labeled-set test asserts). A case is one JSON line:
//   {"text": "...", "stage": "input"|"output", "expect": "block"|"allow", "category": "email"}
// A case counts as detected when some rail triggered with block, mask, rewrite or
// penalize; a log-only trigger is not a detection. "block" cases should be detected,
// "allow" cases should not (a detection there is a false positive).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "guardrails/rails_engine.hpp"

namespace troupe {

struct rails_case {
  std::string text;
  rail_stage stage = rail_stage::input;
  bool expect_block = false;
  std::string category = "uncategorized";
  std::int64_t line = 0;  // 1-based line in its file
};

// Reads a JSONL file of cases; blank lines are skipped. Throws input_error "file:line:
// what" for a line that is not a JSON object, lacks text/stage/expect, or has a value
// outside the ones above.
std::vector<rails_case> read_rails_cases(const std::string& path);

struct latency_summary {
  std::int64_t count = 0;
  double p50_ms = 0, p99_ms = 0;  // nearest-rank percentiles
};

struct category_stats {
  std::string category;
  std::int64_t should_block = 0, detected = 0;           // of the block cases: how many were detected
  std::int64_t should_allow = 0, false_positives = 0;    // of the allow cases: how many were detected
  latency_summary latency;                               // whole checks

  double detection_rate() const { return should_block == 0 ? 0.0 : double(detected) / double(should_block); }
  double false_positive_rate() const { return should_allow == 0 ? 0.0 : double(false_positives) / double(should_allow); }
};

struct rail_stats {
  std::string rail;
  rail_stage stage = rail_stage::input;
  std::int64_t checks = 0, triggers = 0;  // checks it finished, and how many triggered
  latency_summary latency;
};

// A case the rails got wrong: a missed block case or a false positive.
struct rails_case_error {
  rails_case c;
  std::vector<std::string> triggered;  // "rail: reason" of each rail that triggered
};

struct rails_eval_report {
  category_stats overall;                  // category "all"
  std::vector<category_stats> categories;  // by name
  std::vector<rail_stats> rails;           // file order, input then output
  std::vector<rails_case_error> errors;    // in case order
};

rails_eval_report evaluate_rails(const rails_engine& engine, const std::vector<rails_case>& cases);

latency_summary summarize_latency(std::vector<double> ms);

}  // namespace troupe
