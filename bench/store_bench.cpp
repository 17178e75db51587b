// Run-store write throughput: metric rows per second through run_store::log_metrics
// (one transaction per batch), against the baseline of raw SQLite inserts with the same
// pragmas and one transaction — the ceiling for this schema on this disk.
//   build/bench/store_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/store.hpp"

namespace {

std::string fresh_path(const char* tag) {
  auto dir = std::filesystem::temp_directory_path() / ("troupe-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / (std::string(tag) + ".sqlite");
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(p.string() + suffix);
  return p.string();
}

std::vector<troupe::metric_row> make_batch(std::int64_t n) {
  std::vector<troupe::metric_row> rows;
  rows.reserve(static_cast<std::size_t>(n));
  const char* names[] = {"train/loss", "train/reward_mean", "train/kl", "time/step_s"};
  for (std::int64_t i = 0; i < n; ++i) rows.push_back({i / 4, names[i % 4], 0.5 * static_cast<double>(i), 1.7e9});
  return rows;
}

void run_store_log_metrics(benchmark::State& state) {
  auto rows = make_batch(state.range(0));
  troupe::run_info info;
  info.name = info.experiment = "bench";
  auto store = troupe::run_store::create(fresh_path("store"), info, "");
  for (auto _ : state) store.log_metrics(rows);
  state.counters["rows_per_s"] =
    benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)), benchmark::Counter::kIsRate);
}
BENCHMARK(run_store_log_metrics)->Arg(1000)->Arg(100000)->UseRealTime()->Unit(benchmark::kMillisecond);

// Baseline: the same rows through bare sqlite3 calls.
void raw_sqlite_inserts(benchmark::State& state) {
  auto rows = make_batch(state.range(0));
  sqlite3* db = nullptr;
  sqlite3_open(fresh_path("raw").c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
               "CREATE TABLE metrics (run_id INTEGER, step INTEGER, name TEXT, value REAL, wall_time REAL);"
               "CREATE INDEX metrics_by_name ON metrics(name, step);",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO metrics VALUES (1, ?, ?, ?, ?)", -1, &st, nullptr);
  for (auto _ : state) {
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    for (const auto& r : rows) {
      sqlite3_bind_int64(st, 1, r.step);
      sqlite3_bind_text(st, 2, r.name.data(), static_cast<int>(r.name.size()), SQLITE_STATIC);
      sqlite3_bind_double(st, 3, r.value);
      sqlite3_bind_double(st, 4, r.wall_time);
      sqlite3_step(st);
      sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  state.counters["rows_per_s"] =
    benchmark::Counter(static_cast<double>(state.iterations() * state.range(0)), benchmark::Counter::kIsRate);
}
BENCHMARK(raw_sqlite_inserts)->Arg(1000)->Arg(100000)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
