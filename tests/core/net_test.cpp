// Socket facts (core/net.hpp): what counts as loopback, and free ports.
#include <gtest/gtest.h>

#include "core/net.hpp"

namespace troupe {
namespace {

TEST(is_loopback_host, takes_loopback_addresses_and_names_that_resolve_only_to_them) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"})
    EXPECT_TRUE(is_loopback_host(h)) << h;
}

TEST(is_loopback_host, judges_names_by_what_they_resolve_to_not_by_how_they_start) {
  // Each starts like a loopback address, or is not one at all; none resolves to loopback
  // alone (the .invalid names resolve to nothing: RFC 2606).
  for (const char* h : {"127.evil.invalid", "127.0.0.1.invalid", "localhost.invalid", "::1.invalid", "0.0.0.0", "::",
                        "10.1.2.3", "192.168.0.1", "::ffff:10.0.0.1", "128.0.0.1", "", "[]", "[127.0.0.1"})
    EXPECT_FALSE(is_loopback_host(h)) << h;
}

TEST(free_tcp_port, gives_a_port_that_can_be_bound_on_loopback) {
  const int port = free_tcp_port("127.0.0.1");
  EXPECT_GT(port, 0);
  EXPECT_LE(port, 65535);
}

}  // namespace
}  // namespace troupe
