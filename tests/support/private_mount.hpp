// Runs a function in a child process that has its own mount namespace, with a tmpfs
// mounted at `where` (read-only, or limited to `size_bytes`). This is how tests give
// root (CI runs as root, which ignores permission bits) a read-only or full disk.
// Returns the child's exit code, or 77 when the machine refuses namespaces (skip).
#pragma once

#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

namespace troupe::testing {

inline int run_with_private_tmpfs(const std::string& where, bool read_only, long size_bytes,
                                  const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid < 0) return 77;
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(77);
    // Keep our mounts from propagating back to the machine's namespace.
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(77);
    std::string opts = "size=" + std::to_string(size_bytes);
    unsigned long flags = read_only ? MS_RDONLY : 0;
    if (::mount("tmpfs", where.c_str(), "tmpfs", flags, opts.c_str()) != 0) ::_exit(77);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace troupe::testing
