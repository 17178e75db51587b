#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "core/error.hpp"
#include "core/store.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

run_info test_info() {
  run_info info;
  info.name = "r1";
  info.experiment = "smoke";
  info.started_at = 100.0;
  info.troupe_version = "0.1.0";
  return info;
}

// Runs one SQL query returning a single text value, through bare SQLite.
std::string query_text(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST(run_store, records_the_run_and_its_config) {
  testing::temp_dir dir;
  auto path = dir / "s.sqlite";
  { run_store::create(path, test_info(), "experiment: smoke\n"); }
  auto store = run_store::open(path, store_mode::read_only);
  auto info = store.info();
  EXPECT_EQ(info.name, "r1");
  EXPECT_EQ(info.experiment, "smoke");
  EXPECT_EQ(info.status, "running");
  EXPECT_DOUBLE_EQ(info.started_at, 100.0);
  EXPECT_EQ(store.config_yaml(), "experiment: smoke\n");
  EXPECT_EQ(query_text(path, "PRAGMA journal_mode"), "wal");
}

TEST(run_store, metrics_read_back_in_step_order_and_by_name) {
  testing::temp_dir dir;
  auto store = run_store::create(dir / "s.sqlite", test_info(), "");
  store.log_metrics({{1, "train/loss", 0.5, 10.0}, {0, "train/loss", 0.9, 9.0}, {0, "time/step_s", 2.0, 9.0}});
  auto all = store.metrics();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].step, 0);
  EXPECT_EQ(all[2].step, 1);
  auto loss = store.metrics("train/loss");
  ASSERT_EQ(loss.size(), 2u);
  EXPECT_DOUBLE_EQ(loss[0].value, 0.9);
  EXPECT_DOUBLE_EQ(loss[1].value, 0.5);
  EXPECT_EQ(store.metric_names(), (std::vector<std::string>{"time/step_s", "train/loss"}));
  auto s = store.summary();
  EXPECT_EQ(s.last_step, 1);
  EXPECT_EQ(s.metric_rows, 3);
}

TEST(run_store, rollouts_checkpoints_events_and_status_round_trip) {
  testing::temp_dir dir;
  auto store = run_store::create(dir / "s.sqlite", test_info(), "");
  store.log_rollouts({{3, "1+1=", "2", 1.0, R"({"correct":1})", "[]", 2}});
  store.record_checkpoint({4, "checkpoints/step_4", 11.0});
  store.log_event({12.0, "restart", "worker-0", "crashed"});
  store.set_status("finished", 13.0);
  auto r = store.rollouts();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].completion, "2");
  EXPECT_EQ(r[0].weight_version, 2);
  EXPECT_EQ(r[0].rewards_json, R"({"correct":1})");
  ASSERT_EQ(store.checkpoints().size(), 1u);
  EXPECT_EQ(store.checkpoints()[0].path, "checkpoints/step_4");
  ASSERT_EQ(store.events().size(), 1u);
  EXPECT_EQ(store.events()[0].kind, "restart");
  EXPECT_EQ(store.info().status, "finished");
  EXPECT_DOUBLE_EQ(store.info().ended_at, 13.0);
  EXPECT_EQ(store.summary().checkpoints, 1);
}

TEST(run_store, refuses_to_create_over_an_existing_file) {
  testing::temp_dir dir;
  auto path = dir.write("s.sqlite", "x");
  EXPECT_THROW(run_store::create(path, test_info(), ""), system_error);
}

TEST(run_store, opening_something_else_is_a_clear_input_error) {
  testing::temp_dir dir;
  try {
    run_store::open(dir / "missing.sqlite", store_mode::read_only);
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.sqlite': no such file"), std::string::npos) << e.what();
  }
  auto junk = dir.write("junk.sqlite", "this is not a database at all, just text that is long enough");
  try {
    run_store::open(junk, store_mode::read_only);
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("junk.sqlite"), std::string::npos) << e.what();
  }
}

TEST(run_store, read_only_handle_cannot_write) {
  testing::temp_dir dir;
  { run_store::create(dir / "s.sqlite", test_info(), ""); }
  auto ro = run_store::open(dir / "s.sqlite", store_mode::read_only);
  EXPECT_THROW(ro.log_metrics({{0, "x", 1.0, 1.0}}), system_error);
}

// The writer's side of the SIGKILL test below: every connection it opens gets an update
// hook (sqlite3_auto_extension), which counts the metric rows inserted; at row `stop_at`,
// inside a batch's open transaction, it tells the parent (-1 on the pipe) and waits there
// for the kill.
namespace mid_batch {
int pipe_fd = -1;
std::int64_t rows = 0, stop_at = 0;

void on_update(void*, int op, const char*, const char* table, sqlite3_int64) {
  if (op != SQLITE_INSERT || std::strcmp(table, "metrics") != 0 || ++rows != stop_at) return;
  const std::int64_t inside = -1;
  if (::write(pipe_fd, &inside, sizeof(inside)) != sizeof(inside)) ::_exit(3);
  for (;;) ::pause();
}

int install(sqlite3* db, char**, const sqlite3_api_routines*) {
  sqlite3_update_hook(db, on_update, nullptr);
  return SQLITE_OK;
}
}  // namespace mid_batch

// A writer killed with SIGKILL in the middle of a batch (it says when it is there): the
// store reopens, passes SQLite's integrity check, and holds exactly the batches the
// writer committed, none of the one that was open when it died.
TEST(run_store, survives_sigkill_of_its_writer_mid_batch) {
  testing::temp_dir dir;
  const auto path = dir / "s.sqlite";
  constexpr int batch = 5000;
  constexpr std::int64_t full_batches = 20;
  { run_store::create(path, test_info(), ""); }

  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    mid_batch::pipe_fd = pipefd[1];
    mid_batch::stop_at = full_batches * batch + batch / 2;
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(mid_batch::install));
    auto store = run_store::open(path, store_mode::read_write);
    std::vector<metric_row> rows(batch);
    for (std::int64_t b = 0;; ++b) {
      for (int i = 0; i < batch; ++i) rows[static_cast<std::size_t>(i)] = {b, "m", static_cast<double>(i), 0.0};
      store.log_metrics(rows);
      std::int64_t committed = b + 1;
      if (::write(pipefd[1], &committed, sizeof(committed)) != sizeof(committed)) ::_exit(3);
    }
  }
  ::close(pipefd[1]);
  std::int64_t committed = 0, last = 0;
  while (::read(pipefd[0], &last, sizeof(last)) == sizeof(last) && last != -1) committed = last;
  ASSERT_EQ(last, -1) << "the writer ended before it was inside a batch";
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(pipefd[0]);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(committed, full_batches);

  EXPECT_EQ(query_text(path, "PRAGMA integrity_check"), "ok");
  auto store = run_store::open(path, store_mode::read_write);
  EXPECT_EQ(store.summary().metric_rows, full_batches * batch) << "the open batch left nothing behind";
  store.log_metrics({{999, "after", 1.0, 0.0}});  // and it takes writes again
  EXPECT_EQ(store.metrics("after").size(), 1u);
}

TEST(run_store, rewinding_drops_exactly_what_the_last_checkpoint_has_not_seen) {
  testing::temp_dir dir;
  auto store = run_store::create(dir / "s.sqlite", test_info(), "");
  EXPECT_FALSE(store.rewind_to_last_checkpoint().has_value());  // nothing to keep
  store.log_metrics({{0, "sft/loss", 2.0, 1}, {0, "eval/pass@1", 0.1, 2}});
  store.log_rollouts({{0, "p", "c", 1.0, "{}", "[]", 0}});
  store.record_checkpoint({0, "checkpoints/step_000000", 3});
  store.log_metrics({{0, "train/loss", 0.5, 4}, {1, "train/loss", 0.4, 5}, {2, "eval/pass@1", 0.2, 6}});
  store.record_checkpoint({2, "checkpoints/step_000002", 7});
  store.log_metrics({{2, "train/loss", 0.3, 8}});  // a step the killed run did not finish
  store.log_rollouts({{2, "p", "c", 0.0, "{}", "[]", 2}});
  store.set_status("failed", 9);

  auto c = store.rewind_to_last_checkpoint();
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->step, 2);
  EXPECT_EQ(c->path, "checkpoints/step_000002");
  const auto m = store.metrics();
  ASSERT_EQ(m.size(), 5u);  // the train/loss of step 2 is gone; everything before stays
  EXPECT_EQ(store.metrics(std::string("train/loss")).size(), 2u);
  EXPECT_EQ(store.rollouts().size(), 1u);
  EXPECT_EQ(store.checkpoints().size(), 2u);
  EXPECT_EQ(store.info().status, "running");

  // Rows logged after the rewind count for the next checkpoint, and a second rewind to
  // the same checkpoint drops them again.
  store.log_metrics({{2, "train/loss", 0.31, 10}});
  store.rewind_to_last_checkpoint();
  EXPECT_EQ(store.metrics(std::string("train/loss")).size(), 2u);
}

}  // namespace
}  // namespace troupe
