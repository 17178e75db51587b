// Where the data plane listens (weights/gloo_group.hpp): the c10d TCPStore and Gloo have
// neither encryption nor authentication, so they listen on the address they are given,
// never on every interface. Read from /proc/net/tcp{,6} while a group is live.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/net.hpp"
#include "weights/gloo_group.hpp"
#include "weights/tcp_rendezvous.hpp"

namespace troupe {
namespace {

struct listener {
  std::string table;  // /proc/net/tcp or /proc/net/tcp6
  std::string local;  // address:port in /proc's hex form, e.g. 0100007F:1F90
};

// The TCP sockets this process listens on: the LISTEN rows of /proc/net/tcp{,6} whose
// inode is one of this process's descriptors.
std::vector<listener> own_listeners() {
  std::set<std::string> inodes;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
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

bool wildcard(const listener& l) {
  const auto address = l.local.substr(0, l.local.find(':'));
  return address.find_first_not_of('0') == std::string::npos;  // 0.0.0.0 or ::
}

TEST(gloo_group, the_rendezvous_and_gloo_listen_on_the_given_address_only) {
  const int port = free_tcp_port("127.0.0.1");
  auto group = join_gloo_group("127.0.0.1", port, 0, 1, 30, "test group");
  const auto listeners = own_listeners();
  char store_at[32];
  std::snprintf(store_at, sizeof store_at, "0100007F:%04X", port);  // 127.0.0.1:port
  bool store_seen = false;
  for (const auto& l : listeners) {
    EXPECT_FALSE(wildcard(l)) << l.table << " " << l.local << " listens on every interface";
    store_seen = store_seen || l.local == store_at;
  }
  EXPECT_TRUE(store_seen) << "the rendezvous listens on 127.0.0.1:" << port;
}

TEST(gloo_group, a_port_taken_on_that_address_is_a_system_error_naming_it) {
  const int port = free_tcp_port("127.0.0.1");
  auto first = join_tcp_store("127.0.0.1", port, 0, 2, 30, "first");
  try {
    join_tcp_store("127.0.0.1", port, 0, 2, 30, "second");
    FAIL() << "two servers on one port";
  } catch (const system_error& e) {
    EXPECT_NE(std::string(e.what()).find("second: cannot listen on 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
      << e.what();
  }
}

}  // namespace
}  // namespace troupe
