#include "core/store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <filesystem>

#include "core/error.hpp"

namespace troupe {

namespace {

// Bumped when the schema changes; a reader refuses a store from a newer troupe.
// 2: checkpoints remember what they have seen (metrics_upto, rollouts_upto) for resume.
constexpr int schema_version = 2;

constexpr const char* schema_sql = R"sql(
CREATE TABLE runs (
  id INTEGER PRIMARY KEY, name TEXT NOT NULL, experiment TEXT NOT NULL,
  status TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL DEFAULT 0,
  troupe_version TEXT NOT NULL);
CREATE TABLE config (run_id INTEGER NOT NULL REFERENCES runs(id), yaml TEXT NOT NULL);
CREATE TABLE metrics (
  run_id INTEGER NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,
  value REAL NOT NULL, wall_time REAL NOT NULL);
CREATE INDEX metrics_by_name ON metrics(name, step);
CREATE TABLE rollouts (
  run_id INTEGER NOT NULL, step INTEGER NOT NULL, prompt TEXT NOT NULL,
  completion TEXT NOT NULL, reward REAL NOT NULL, rewards_json TEXT NOT NULL,
  verdicts_json TEXT NOT NULL, weight_version INTEGER NOT NULL);
CREATE TABLE checkpoints (
  run_id INTEGER NOT NULL, step INTEGER NOT NULL, path TEXT NOT NULL, wall_time REAL NOT NULL,
  metrics_upto INTEGER NOT NULL DEFAULT 0, rollouts_upto INTEGER NOT NULL DEFAULT 0);
CREATE TABLE events (
  run_id INTEGER NOT NULL, wall_time REAL NOT NULL, kind TEXT NOT NULL,
  source TEXT NOT NULL, message TEXT NOT NULL);
)sql";

// A prepared statement that finalizes itself.
class statement {
 public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK)
      throw system_error(std::string("run store: cannot prepare statement: ") + sqlite3_errmsg(db));
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  statement& bind(int i, double v) { return check(sqlite3_bind_double(stmt_, i, v)); }
  statement& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }
  // Returns true while a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw system_error(std::string("run store: ") + sqlite3_errmsg(db_));
  }
  void run_and_reset() {
    step();
    sqlite3_reset(stmt_);
  }
  std::int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double f64(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string text(int col) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }

 private:
  statement& check(int rc) {
    if (rc != SQLITE_OK) throw system_error(std::string("run store: bind failed: ") + sqlite3_errmsg(db_));
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN ... COMMIT, rolled back if anything throws before commit().
class transaction {
 public:
  explicit transaction(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw system_error(std::string("run store: ") + sql + ": " + msg);
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

sqlite3* open_db(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw system_error("run store '" + path + "': cannot open: " + msg);
  }
  // A reader may meet a writer mid-checkpoint; wait instead of failing.
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace

double wall_clock_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

void run_store::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw system_error("run store '" + path_ + "': " + msg);
  }
}

run_store run_store::create(const std::string& path, const run_info& info, const std::string& config_yaml) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec))
    throw system_error("run store '" + path + "': already exists");
  run_store store(open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE), path);
  // WAL: readers never block the writer; synchronous=NORMAL keeps every committed
  // transaction across a process crash (only an OS crash may lose the last ones).
  store.exec("PRAGMA journal_mode=WAL");
  store.exec("PRAGMA synchronous=NORMAL");
  transaction tx(store.db_);
  store.exec(schema_sql);
  store.exec(("PRAGMA user_version=" + std::to_string(schema_version)).c_str());
  statement(store.db_,
            "INSERT INTO runs (id, name, experiment, status, started_at, ended_at, troupe_version) "
            "VALUES (1, ?, ?, ?, ?, ?, ?)")
      .bind(1, info.name).bind(2, info.experiment).bind(3, info.status)
      .bind(4, info.started_at).bind(5, info.ended_at).bind(6, info.troupe_version)
      .run_and_reset();
  statement(store.db_, "INSERT INTO config (run_id, yaml) VALUES (1, ?)").bind(1, config_yaml).run_and_reset();
  tx.commit();
  store.schema_version_ = schema_version;
  return store;
}

run_store run_store::open(const std::string& path, store_mode mode) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw input_error("run store '" + path + "': no such file");
  int flags = mode == store_mode::read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  run_store store(open_db(path, flags), path);
  int version = -1;
  try {
    statement st(store.db_, "PRAGMA user_version");
    if (st.step()) version = static_cast<int>(st.i64(0));
    statement probe(store.db_, "SELECT count(*) FROM runs");
    probe.step();
  } catch (const system_error& e) {
    throw input_error("run store '" + path + "': not a troupe run store (" + e.what() + ")");
  }
  if (version < 1 || version > schema_version)
    throw input_error("run store '" + path + "': schema version " + std::to_string(version) +
                      " is not one this troupe reads (" + std::to_string(schema_version) + ")");
  if (mode == store_mode::read_write) store.exec("PRAGMA synchronous=NORMAL");
  store.schema_version_ = version;
  return store;
}

run_store::run_store(run_store&& other) noexcept
    : db_(other.db_), path_(std::move(other.path_)), schema_version_(other.schema_version_) {
  other.db_ = nullptr;
}

run_store& run_store::operator=(run_store&& other) noexcept {
  if (this != &other) {
    sqlite3_close(db_);
    db_ = other.db_;
    path_ = std::move(other.path_);
    schema_version_ = other.schema_version_;
    other.db_ = nullptr;
  }
  return *this;
}

run_store::~run_store() { sqlite3_close(db_); }

void run_store::log_metrics(const std::vector<metric_row>& rows) {
  if (rows.empty()) return;
  transaction tx(db_);
  statement st(db_, "INSERT INTO metrics (run_id, step, name, value, wall_time) VALUES (1, ?, ?, ?, ?)");
  for (const auto& r : rows) st.bind(1, r.step).bind(2, r.name).bind(3, r.value).bind(4, r.wall_time).run_and_reset();
  tx.commit();
}

void run_store::log_rollouts(const std::vector<rollout_row>& rows) {
  if (rows.empty()) return;
  transaction tx(db_);
  statement st(db_,
               "INSERT INTO rollouts (run_id, step, prompt, completion, reward, rewards_json, "
               "verdicts_json, weight_version) VALUES (1, ?, ?, ?, ?, ?, ?, ?)");
  for (const auto& r : rows)
    st.bind(1, r.step).bind(2, r.prompt).bind(3, r.completion).bind(4, r.reward)
        .bind(5, r.rewards_json).bind(6, r.verdicts_json).bind(7, r.weight_version).run_and_reset();
  tx.commit();
}

void run_store::record_checkpoint(const checkpoint_row& row) {
  // The high-water marks of metrics and rollouts say what the checkpoint has seen: a
  // resume drops the rows after them (rewind_to_checkpoint). rowids only grow here,
  // since rows are never deleted except past the marks.
  statement(db_,
            "INSERT INTO checkpoints (run_id, step, path, wall_time, metrics_upto, rollouts_upto) VALUES "
            "(1, ?, ?, ?, (SELECT coalesce(max(rowid), 0) FROM metrics), (SELECT coalesce(max(rowid), 0) FROM rollouts))")
      .bind(1, row.step).bind(2, row.path).bind(3, row.wall_time).run_and_reset();
}

std::optional<checkpoint_row> run_store::rewind_to_last_checkpoint() {
  if (schema_version_ < 2)
    throw input_error("run store '" + path_ + "': written by an older troupe whose checkpoints cannot be resumed");
  transaction tx(db_);
  std::optional<checkpoint_row> last;
  std::int64_t metrics_upto = 0, rollouts_upto = 0, rowid = 0;
  {
    statement st(db_,
                 "SELECT step, path, wall_time, metrics_upto, rollouts_upto, rowid FROM checkpoints "
                 "ORDER BY rowid DESC LIMIT 1");
    if (st.step()) {
      last = checkpoint_row{st.i64(0), st.text(1), st.f64(2)};
      metrics_upto = st.i64(3), rollouts_upto = st.i64(4), rowid = st.i64(5);
    }
  }
  statement(db_, "DELETE FROM metrics WHERE rowid > ?").bind(1, metrics_upto).run_and_reset();
  statement(db_, "DELETE FROM rollouts WHERE rowid > ?").bind(1, rollouts_upto).run_and_reset();
  statement(db_, "DELETE FROM checkpoints WHERE rowid > ?").bind(1, rowid).run_and_reset();
  statement(db_, "UPDATE runs SET status = 'running', ended_at = 0 WHERE id = 1").run_and_reset();
  tx.commit();
  return last;
}

void run_store::log_event(const event_row& row) {
  statement(db_, "INSERT INTO events (run_id, wall_time, kind, source, message) VALUES (1, ?, ?, ?, ?)")
      .bind(1, row.wall_time).bind(2, row.kind).bind(3, row.source).bind(4, row.message).run_and_reset();
}

void run_store::set_status(const std::string& status, double ended_at) {
  statement(db_, "UPDATE runs SET status = ?, ended_at = ? WHERE id = 1")
      .bind(1, status).bind(2, ended_at).run_and_reset();
}

run_info run_store::info() const {
  statement st(db_, "SELECT name, experiment, status, started_at, ended_at, troupe_version FROM runs WHERE id = 1");
  if (!st.step()) throw input_error("run store '" + path_ + "': has no run row");
  return {st.text(0), st.text(1), st.text(2), st.f64(3), st.f64(4), st.text(5)};
}

run_summary run_store::summary() const {
  run_summary s;
  s.info = info();
  statement m(db_, "SELECT coalesce(max(step), -1), count(*) FROM metrics");
  if (m.step()) s.last_step = m.i64(0), s.metric_rows = m.i64(1);
  statement c(db_, "SELECT count(*) FROM checkpoints");
  if (c.step()) s.checkpoints = c.i64(0);
  return s;
}

std::string run_store::config_yaml() const {
  statement st(db_, "SELECT yaml FROM config WHERE run_id = 1");
  return st.step() ? st.text(0) : std::string();
}

std::vector<metric_row> run_store::metrics(const std::optional<std::string>& name) const {
  std::vector<metric_row> out;
  statement st(db_, name ? "SELECT step, name, value, wall_time FROM metrics WHERE name = ? ORDER BY step, rowid"
                         : "SELECT step, name, value, wall_time FROM metrics ORDER BY step, rowid");
  if (name) st.bind(1, *name);
  while (st.step()) out.push_back({st.i64(0), st.text(1), st.f64(2), st.f64(3)});
  return out;
}

std::vector<std::string> run_store::metric_names() const {
  std::vector<std::string> out;
  statement st(db_, "SELECT DISTINCT name FROM metrics ORDER BY name");
  while (st.step()) out.push_back(st.text(0));
  return out;
}

std::vector<rollout_row> run_store::rollouts(std::int64_t limit) const {
  std::vector<rollout_row> out;
  statement st(db_,
               "SELECT step, prompt, completion, reward, rewards_json, verdicts_json, weight_version "
               "FROM rollouts ORDER BY rowid DESC LIMIT ?");
  st.bind(1, limit);
  while (st.step())
    out.push_back({st.i64(0), st.text(1), st.text(2), st.f64(3), st.text(4), st.text(5), st.i64(6)});
  return out;
}

std::vector<checkpoint_row> run_store::checkpoints() const {
  std::vector<checkpoint_row> out;
  statement st(db_, "SELECT step, path, wall_time FROM checkpoints ORDER BY step");
  while (st.step()) out.push_back({st.i64(0), st.text(1), st.f64(2)});
  return out;
}

std::vector<event_row> run_store::events() const {
  std::vector<event_row> out;
  statement st(db_, "SELECT wall_time, kind, source, message FROM events ORDER BY rowid");
  while (st.step()) out.push_back({st.f64(0), st.text(1), st.text(2), st.text(3)});
  return out;
}

}  // namespace troupe
