// The rails engine: runs the rails of one stage of a rails file on a text and says what
// to do with it.
//
//   rails_engine engine(load_rails_file("examples/rails/default.yaml", services));
//   rails_result r = engine.check(rail_stage::input, user_text);
//   if (r.blocked()) reply(r.refusal);          // the first blocking rail's message
//   else send_to_model(r.text);                 // masked / rewritten text
//   reward -= r.penalty;                        // penalize verdicts, summed
//
// How a check runs:
//   * Concurrently: every rail of the stage runs on its own thread (the caller's thread
//     runs the first), all on the original text. By default (concurrency::automatic)
//     only when it pays: when a rail of the stage waits on a model, or the text is at
//     least 256 KiB. Starting a thread costs tens of microseconds, while the CPU-only
//     rails check a chat message in a few microseconds (bench/rails_bench.cpp).
//   * A block stops the rest cooperatively: the engine raises a stop flag; rails that
//     take long (guard model, scorer, RE2 scans between matches) return early, and their
//     verdicts are dropped (the log says "stopped").
//   * Mask and rewrite are applied after all rails ran, in one pass, in a defined order:
//     spans sorted by position; where two overlap, the one that starts first wins, then
//     the longer, then the rail listed first. A blocked check rewrites nothing.
//   * The final action is the strongest verdict: block > rewrite > mask > penalize >
//     log > allow.
//
// Thread safety: check() may be called from several threads at once; the rails are
// immutable and the counters are atomic.
//
// check() is the synchronous façade (`troupe rails eval/check`, `troupe chat`). The
// guardrail actor (actors/guardrail_actor.hpp) runs the same rails another way, each
// rail as an actor of its own, and builds its result with the same pieces: run_rail()
// for one rail's run, combine() for the log, counters and the one-pass masking.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "guardrails/rails_file.hpp"

namespace troupe {

// One rail's part in one check, for the decision log.
struct rail_decision {
  std::string rail;
  std::string type;             // the rail's family
  rail_action action = rail_action::allow;
  std::string reason;           // why it triggered (empty when allowed)
  std::string note;             // fail-open / fail-closed, "stopped"...
  double latency_ms = 0;        // this rail's own time
  bool stopped = false;         // cut short by another rail's block; its verdict is dropped
};

struct rails_result {
  rail_stage stage = rail_stage::input;
  rail_action action = rail_action::allow;  // the strongest verdict
  std::string text;                         // the text after mask / rewrite (unchanged if blocked)
  std::string refusal;                      // when blocked: the blocking rail's message
  std::vector<rail_verdict> verdicts;       // the rails that triggered, in file order (not stopped ones)
  double penalty = 0;                       // sum of the penalize verdicts
  std::vector<rail_decision> log;           // one per rail of the stage, file order
  double latency_ms = 0;                    // the whole check

  bool blocked() const { return action == rail_action::block; }
  // Some rail triggered with block, mask, rewrite or penalize (not log only): what
  // `troupe rails eval` counts as detected.
  bool detected() const;
};

// Per rail: how often it ran and triggered (for rails/<name>/trigger_rate).
struct rail_counter {
  std::string rail;
  rail_stage stage = rail_stage::input;
  std::int64_t checks = 0;    // checks it ran to the end (stopped ones are not counted)
  std::int64_t triggers = 0;  // of those, how many triggered (any action but allow)
  double trigger_rate() const { return checks == 0 ? 0.0 : static_cast<double>(triggers) / static_cast<double>(checks); }
};

// One rail's run in one check: its verdict and its own time. `stopped`: cut short (or
// not waited for) because another rail blocked; the verdict is then dropped.
struct rail_run {
  rail_verdict verdict;
  double latency_ms = 0;
  bool stopped = false;
};

// Runs `r` on `text` and times it. A block raises `stop`; a rail that finishes after the
// flag was raised (by another rail) counts as stopped.
rail_run run_rail(const rail& r, rail_stage stage, const std::string& text, stop_flag& stop);

struct rails_engine_options {
  // never: one rail after another on the caller's thread (still stops after a block).
  enum class concurrency { automatic, always, never };
  concurrency mode = concurrency::automatic;
  std::size_t concurrent_from_bytes = 256 * 1024;  // automatic: texts this long run concurrently
};

class rails_engine {
 public:
  explicit rails_engine(rails_file file, rails_engine_options options = {});
  rails_engine(const rails_engine&) = delete;
  rails_engine& operator=(const rails_engine&) = delete;

  rails_result check(rail_stage stage, const std::string& text) const;

  std::vector<rail_counter> counters() const;
  const rails_file& file() const { return file_; }

  // For callers that run the rails themselves: the result of one check of `stage` on
  // `text` from its runs (one per rail of the stage, in file order), exactly as check()
  // builds it: the decision log, the counters (stopped runs are not counted), the
  // strongest action, the refusal, the penalty, and mask / rewrite applied in one pass.
  // latency_ms is left 0 for the caller to set.
  rails_result combine(rail_stage stage, const std::string& text, std::vector<rail_run> runs) const;

 private:
  struct counts {
    std::atomic<std::int64_t> checks{0}, triggers{0};
  };

  rails_file file_;
  rails_engine_options options_;
  std::unique_ptr<counts[]> input_counts_, output_counts_;
};

// Applies spans to `text` in the order described above.
std::string apply_spans(const std::string& text, std::vector<text_span> spans_in_rail_order);

}  // namespace troupe
