// The TCP sockets a process listens on, read from /proc: for tests that check that
// nothing listens on every interface (0.0.0.0 or ::) while a run is live.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace troupe::testing {

struct listener {
  std::string table;  // /proc/net/tcp or /proc/net/tcp6
  std::string local;  // address:port in /proc's hex form, e.g. 0100007F:1F90
};

// The LISTEN rows of /proc/net/tcp{,6} whose inode is one of process `pid`'s descriptors
// (0: this process). A process that has ended has none.
inline std::vector<listener> listeners_of(pid_t pid = 0) {
  const std::string fds = (pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid)) + "/fd";
  std::set<std::string> inodes;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(fds, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code link_ec;
    const auto target = std::filesystem::read_symlink(it->path(), link_ec).string();
    if (!link_ec && target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::vector<listener> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      if (state == "0A" && inodes.count(inode)) out.push_back({table, local});
    }
  }
  return out;
}

// Whether it listens on every interface: 0.0.0.0 or ::.
inline bool wildcard(const listener& l) {
  const auto address = l.local.substr(0, l.local.find(':'));
  return address.find_first_not_of('0') == std::string::npos;
}

}  // namespace troupe::testing
