// Where the data plane listens (weights/gloo_group.hpp): the c10d TCPStore and Gloo have
// neither encryption nor authentication, so they listen on the address they are given,
// never on every interface. Read from /proc/net/tcp{,6} while a group is live.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "core/error.hpp"
#include "core/net.hpp"
#include "weights/gloo_group.hpp"
#include "weights/tcp_rendezvous.hpp"
#include "tests/support/listeners.hpp"

namespace troupe {
namespace {

using testing::listeners_of;
using testing::wildcard;

TEST(gloo_group, the_rendezvous_and_gloo_listen_on_the_given_address_only) {
  const int port = reserve_tcp_port("127.0.0.1");
  auto group = join_gloo_group("127.0.0.1", port, 0, 1, 30, "test group");
  const auto listeners = listeners_of();
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
  const int port = reserve_tcp_port("127.0.0.1");
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
