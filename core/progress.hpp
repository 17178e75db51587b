// Progress of a long stage: a bar redrawn in place on a terminal, or plain log lines when
// stdout is not a TTY (CI logs, pipes), so both show step, the stage's figures, the rate
// and the ETA. Off a terminal the lines are periodic, so that a 600-step run logs about
// twenty of them, not 600.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

//   automatic  bar on a terminal, periodic otherwise
//   bar        one line redrawn in place
//   periodic   a line at the first update, whenever another 5% of the total is done,
//              at least every 10 s in between, and at the last update
//   log        a line per update
//   off        nothing
enum class progress_style { automatic, bar, periodic, log, off };

// "auto" | "bar" | "periodic" | "log" | "off"; throws input_error otherwise.
progress_style parse_progress_style(const std::string& text);

class progress {
 public:
  using clock = std::chrono::steady_clock;
  using now_fn = std::function<clock::time_point()>;
  static constexpr std::chrono::seconds periodic_interval{10};

  // REQUIRES: total > 0. `first`: units done before this process began (a resumed
  // run), left out of the rate and the ETA. `now`: the clock (tests inject one).
  progress(std::string stage, std::int64_t total, progress_style style, std::ostream& out, std::int64_t first = 0,
           now_fn now = &clock::now);

  // Reports that `done` of `total` units are complete, with named figures to show
  // (e.g. {"reward", 0.42}).
  void update(std::int64_t done, const std::vector<std::pair<std::string, double>>& figures);

  // Ends the bar's line (a bar needs its newline) and prints the total time.
  void finish();

  // The text of one update without terminal control codes (for tests and the log style).
  std::string render(std::int64_t done, const std::vector<std::pair<std::string, double>>& figures,
                     double elapsed_s) const;

 private:
  bool periodic_line_due(std::int64_t done, clock::time_point now) const;

  std::string stage_;
  std::int64_t total_;
  std::int64_t first_;
  progress_style style_;
  std::ostream& out_;
  now_fn now_;
  clock::time_point start_;
  bool finished_ = false;
  // periodic: the last line printed (none yet: -1)
  std::int64_t printed_done_ = -1;
  clock::time_point printed_at_;
};

}  // namespace troupe
