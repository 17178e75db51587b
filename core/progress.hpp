// Progress of a long stage: a bar redrawn in place on a terminal, or a plain log line
// per update when stdout is not a TTY (CI logs, pipes), so both show step, the stage's
// figures, the rate and the ETA.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

enum class progress_style { automatic, bar, log, off };

// "auto" | "bar" | "log" | "off"; throws input_error otherwise.
progress_style parse_progress_style(const std::string& text);

class progress {
 public:
  using clock = std::chrono::steady_clock;

  // REQUIRES: total > 0. `first`: units done before this process began (a resumed
  // run), left out of the rate and the ETA.
  progress(std::string stage, std::int64_t total, progress_style style, std::ostream& out, std::int64_t first = 0);

  // Reports that `done` of `total` units are complete, with named figures to show
  // (e.g. {"reward", 0.42}).
  void update(std::int64_t done, const std::vector<std::pair<std::string, double>>& figures);

  // Ends the bar's line (a bar needs its newline) and prints the total time.
  void finish();

  // The text of one update without terminal control codes (for tests and the log style).
  std::string render(std::int64_t done, const std::vector<std::pair<std::string, double>>& figures,
                     double elapsed_s) const;

 private:
  std::string stage_;
  std::int64_t total_;
  std::int64_t first_;
  progress_style style_;
  std::ostream& out_;
  clock::time_point start_;
  bool finished_ = false;
};

}  // namespace troupe
