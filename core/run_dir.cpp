#include "core/run_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <filesystem>

#include "core/error.hpp"
#include "troupe/build_info.hpp"

namespace troupe {

namespace fs = std::filesystem;

namespace {

std::string timestamp_name(const std::string& experiment) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  return experiment + "-" + buf;
}

}  // namespace

void fsync_path(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomically(const std::string& path, const std::string& content, unsigned mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());  // O_CREAT keeps an old file's mode: start from none
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) throw system_error("cannot write '" + path + "': " + errno_text(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw system_error("cannot write '" + path + "': " + errno_text(err));
    }
    done += static_cast<std::size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw system_error("cannot write '" + path + "': " + errno_text(err));
  }
}

new_run create_run_dir(const run_section& run, const std::string& experiment, const std::string& config_yaml) {
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (ec) throw system_error("run.dir '" + run.dir + "': cannot create: " + ec.message());

  const std::string base = run.name.empty() ? timestamp_name(experiment) : run.name;
  if (base.find('/') != std::string::npos || base == "." || base == "..")
    throw input_error("run.name '" + base + "': must be a plain directory name");

  // Build everything in a hidden sibling, then rename: readers never see half a run.
  fs::path tmp = fs::path(run.dir) / (".tmp-" + base + "-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec) || ec)
    throw system_error("run.dir '" + run.dir + "': cannot create a run directory there: " +
                       (ec ? ec.message() : std::string("already exists")));
  std::string final_path;
  try {
    run_info info;
    info.experiment = experiment;
    info.started_at = wall_clock_now();
    info.troupe_version = build_info::troupe_version;
    write_file_atomically((tmp / config_file_name).string(), config_yaml);

    for (int attempt = 1; attempt < 1000 && final_path.empty(); ++attempt) {
      std::string name = attempt == 1 ? base : base + "-" + std::to_string(attempt);
      if (!run.name.empty() && attempt > 1) break;  // an explicit name is never altered
      fs::path target = fs::path(run.dir) / name;
      if (fs::exists(target, ec)) continue;
      info.name = name;
      // The store records its run's name, so it is written for each candidate name.
      fs::remove(tmp / store_file_name, ec);
      run_store::create((tmp / store_file_name).string(), info, config_yaml);
      fsync_path(tmp.string(), O_RDONLY | O_DIRECTORY);
      // rename(2) of a directory fails if the target exists and is not empty: a
      // concurrent run that took the name makes us try the next one.
      if (::rename(tmp.c_str(), target.c_str()) == 0) final_path = target.string();
      else if (errno != EEXIST && errno != ENOTEMPTY)
        throw system_error("run.dir '" + run.dir + "': cannot create run directory '" + name +
                           "': " + errno_text(errno));
    }
    if (final_path.empty())
      throw system_error("run directory '" + (fs::path(run.dir) / base).string() +
                         "' already exists; choose another run.name");
    fsync_path(run.dir, O_RDONLY | O_DIRECTORY);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  run_lock lock(final_path);
  return {final_path, run_store::open((fs::path(final_path) / store_file_name).string(), store_mode::read_write),
          std::move(lock)};
}

run_lock::run_lock(const std::string& run_dir) {
  const auto file = (fs::path(run_dir) / "run.lock").string();
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw system_error("run '" + run_dir + "': cannot open " + file + ": " + errno_text(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd_);
    fd_ = -1;
    if (e == EWOULDBLOCK) throw input_error("run '" + run_dir + "': another troupe process is running it");
    throw system_error("run '" + run_dir + "': cannot lock " + file + ": " + errno_text(e));
  }
}

run_lock& run_lock::operator=(run_lock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

run_lock::~run_lock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

new_run reopen_run_dir(const std::string& path) {
  std::error_code ec;
  const auto store_path = (fs::path(path) / store_file_name).string();
  if (!fs::is_regular_file(store_path, ec))
    throw input_error("--resume '" + path + "': not a run directory (no " + store_file_name + ")");
  run_lock lock(path);
  return {path, run_store::open(store_path, store_mode::read_write), std::move(lock)};
}

std::vector<std::string> list_run_dirs(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // temporary or hidden
    if (fs::is_regular_file(it->path() / store_file_name, ec)) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string resolve_run_dir(const std::string& run, const std::string& dir) {
  std::error_code ec;
  for (const fs::path& candidate : {fs::path(run), fs::path(dir) / run})
    if (fs::is_regular_file(candidate / store_file_name, ec)) return candidate.string();
  throw input_error("run '" + run + "': not a run directory, and no run of that name under '" + dir + "'");
}

}  // namespace troupe
