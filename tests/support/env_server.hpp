// The reference environment server (examples/python_env/server.py) as a child process
// of a test, on a free loopback port.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

extern char** environ;

namespace troupe::testing {

inline const char* python = "/usr/bin/python3";
inline const std::string server_py = std::string(TROUPE_SOURCE_DIR) + "/examples/python_env/server.py";

inline bool python_has_zmq_and_msgpack() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import zmq, msgpack' >/dev/null 2>&1") == 0;
  return ok;
}

// The reference server as a child process. start() returns once it is listening.
class server_process {
 public:
  ~server_process() { stop(); }

  // Starts `server.py ARGS` and waits for its "listening on ENDPOINT" line.
  void start(std::vector<std::string> args) {
    stop();
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    std::vector<std::string> argv_s = {python, server_py};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawn(&pid_, python, &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    fd_ = out[0];
    std::string line;
    for (char c = 0; c != '\n';) {
      pollfd p{fd_, POLLIN, 0};
      ASSERT_EQ(::poll(&p, 1, 10000), 1) << "server.py did not start within 10 s";
      ASSERT_EQ(::read(fd_, &c, 1), 1) << "server.py exited before listening";
      line += c;
    }
    const std::string prefix = "listening on ";
    ASSERT_EQ(line.rfind(prefix, 0), 0u) << line;
    endpoint = line.substr(prefix.size(), line.size() - prefix.size() - 1);
    port = endpoint.substr(endpoint.rfind(':') + 1);
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  std::string endpoint;  // tcp://127.0.0.1:PORT
  std::string port;

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
};

}  // namespace troupe::testing
