// Run directories: `runs/<name>/` holding `store.sqlite` (core/store.hpp) and
// `config.yaml` (the resolved config). A run directory appears whole or not at all: it is
// built under a hidden temporary name beside its final place and renamed into place.
#pragma once

#include <string>
#include <vector>

#include "core/config_binding.hpp"
#include "core/store.hpp"

namespace troupe {

// The `run:` section of every experiment config.
struct run_section {
  std::string dir = "runs";  // parent folder of run directories
  std::string name;          // empty: <experiment>-<YYYYmmdd-HHMMSS>
  std::int64_t seed = 0;     // the one seed every component derives its own from

  template <class V>
  void describe(V& v) {
    v.field("dir", dir, "parent folder of run directories");
    v.field("name", name, "run directory name; empty picks <experiment>-<date>-<time>");
    v.field("seed", seed, "root seed; components derive theirs from it", at_least<std::int64_t>(0));
  }
};

// An exclusive flock(2) on `<run dir>/run.lock`, held while a process writes the run,
// so that `troupe run --resume` cannot start on a run that another process is still
// writing. The kernel drops it when the holder exits, kill -9 included, so a crashed
// run never stays locked.
class run_lock {
 public:
  run_lock() = default;
  // Throws input_error naming the run if another process holds it, system_error if the
  // lock file cannot be opened.
  explicit run_lock(const std::string& run_dir);
  run_lock(run_lock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  run_lock& operator=(run_lock&& other) noexcept;
  run_lock(const run_lock&) = delete;
  run_lock& operator=(const run_lock&) = delete;
  ~run_lock();

 private:
  int fd_ = -1;
};

struct new_run {
  std::string path;   // the run directory
  run_store store;    // open for writing
  run_lock lock;      // held until the run ends
};

// Creates `<dir>/<name>` (adding -2, -3... if the name is taken) with the store and
// config.yaml, atomically. Throws system_error naming the path if it cannot; nothing is
// left behind then.
new_run create_run_dir(const run_section& run, const std::string& experiment, const std::string& config_yaml);

inline constexpr const char* store_file_name = "store.sqlite";
inline constexpr const char* config_file_name = "config.yaml";

// Reopens the run directory at `path` to continue it (`troupe run --resume`): takes its
// lock and opens its store for writing. Throws input_error if `path` is not a run
// directory or another process is running it.
new_run reopen_run_dir(const std::string& path);

// Run directories under `dir` (those holding a store), oldest first by name.
std::vector<std::string> list_run_dirs(const std::string& dir);

// Resolves RUN given to `troupe runs show RUN`: a path to a run directory, or a name
// under `dir`. Throws input_error if it is neither.
std::string resolve_run_dir(const std::string& run, const std::string& dir);

// fsync(2)s the file or directory at `path`, opened with `flags` (O_RDONLY, plus
// O_DIRECTORY for a directory, whose fsync makes renames inside it durable). Best
// effort: a path that cannot be opened is skipped.
void fsync_path(const std::string& path, int flags);

// Writes `content` to `path` through a temporary file and a rename, so a reader sees the
// old file or the new one, never half of one. `mode` is the new file's permission bits
// (0600 for a private key: it is never readable by others, not even for a moment).
void write_file_atomically(const std::string& path, const std::string& content, unsigned mode = 0644);

}  // namespace troupe
