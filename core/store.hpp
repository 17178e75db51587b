// The run store: one SQLite file per run directory (`store.sqlite`), in WAL mode, holding
// everything a run records — the run itself, its resolved config, metrics, sampled
// rollouts, checkpoints and events. Readers (`troupe runs`) may open it while the run
// writes. Every write is one transaction: a process killed with SIGKILL mid-batch leaves
// the file readable with every committed row intact and no row of the open batch.
//
// Thread safety: a run_store is used from one thread at a time (the store actor owns
// the writer; readers open their own).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace troupe {

struct metric_row {
  std::int64_t step = 0;
  std::string name;        // "train/loss", "time/step_s", ...
  double value = 0;
  double wall_time = 0;    // seconds since the Unix epoch
};

struct rollout_row {
  std::int64_t step = 0;
  std::string prompt;
  std::string completion;
  double reward = 0;           // the weighted sum the advantage used
  std::string rewards_json;    // every named component, {"correct": 1.0, ...}
  std::string verdicts_json;   // guardrail verdicts, [{"rail": ..., "action": ...}]
  std::int64_t weight_version = 0;
};

struct checkpoint_row {
  std::int64_t step = 0;
  std::string path;        // relative to the run directory
  double wall_time = 0;
};

struct event_row {
  double wall_time = 0;
  std::string kind;        // "restart", "error", "stop", ...
  std::string source;      // the actor or component that reported it
  std::string message;
};

// The one row of `runs`.
struct run_info {
  std::string name;
  std::string experiment;
  std::string status = "running";  // running | finished | stopped | failed
  double started_at = 0;
  double ended_at = 0;             // 0 while running
  std::string troupe_version;
};

// Summary for `troupe runs list`.
struct run_summary {
  run_info info;
  std::int64_t last_step = -1;     // -1: no metric yet
  std::int64_t metric_rows = 0;
  std::int64_t checkpoints = 0;
};

enum class store_mode { read_only, read_write };

class run_store {
 public:
  // Creates a new store file at `path` with the schema and the run's row.
  // Throws system_error if the file exists or cannot be written.
  static run_store create(const std::string& path, const run_info& info, const std::string& config_yaml);

  // Opens an existing store. Throws input_error if it is missing or not a troupe store.
  static run_store open(const std::string& path, store_mode mode);

  run_store(run_store&&) noexcept;
  run_store& operator=(run_store&&) noexcept;
  ~run_store();

  // --- writing (each call is one transaction) ---
  void log_metrics(const std::vector<metric_row>& rows);
  void log_rollouts(const std::vector<rollout_row>& rows);
  void record_checkpoint(const checkpoint_row& row);
  void log_event(const event_row& row);
  void set_status(const std::string& status, double ended_at);
  // For `troupe run --resume`: drops the metrics, rollouts and checkpoint rows recorded
  // after the last checkpoint row (what the checkpoint has not seen, and the run will
  // record again), marks the run running, and returns that checkpoint; nullopt, after
  // dropping every metric and rollout, when the run had none. One transaction: a kill
  // mid-rewind leaves the store as it was. Throws input_error for a store from before
  // schema 2.
  std::optional<checkpoint_row> rewind_to_last_checkpoint();

  // --- reading ---
  run_info info() const;
  run_summary summary() const;
  std::string config_yaml() const;
  // All metrics, or those whose name equals `name`, ordered by step then insertion.
  std::vector<metric_row> metrics(const std::optional<std::string>& name = std::nullopt) const;
  std::vector<std::string> metric_names() const;
  std::vector<rollout_row> rollouts(std::int64_t limit = 100) const;
  std::vector<checkpoint_row> checkpoints() const;
  std::vector<event_row> events() const;

  const std::string& path() const { return path_; }

 private:
  run_store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void exec(const char* sql) const;

  sqlite3* db_ = nullptr;
  std::string path_;
  int schema_version_ = 0;
};

// Seconds since the Unix epoch, as stored in wall_time columns.
double wall_clock_now();

}  // namespace troupe
