// Socket facts (core/net.hpp): what counts as loopback, listeners and port reservations.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
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

// The race "find a free port, release it, tell the peers" had: another process could
// take the port before the server bound it. A reserved port stays bound and listening
// until the server of this process takes the socket over.
TEST(reserve_tcp_port, holds_the_port_listening_until_this_process_claims_it) {
  const int port = reserve_tcp_port("127.0.0.1");
  ASSERT_GT(port, 0);
  ASSERT_LE(port, 65535);
  try {
    ::close(listen_tcp("127.0.0.1", port, "intruder"));
    FAIL() << "another listener took the reserved port " << port;
  } catch (const system_error& e) {
    EXPECT_NE(std::string(e.what()).find("intruder: cannot listen on 127.0.0.1:" + std::to_string(port)),
              std::string::npos)
      << e.what();
  }
  // A peer may connect before the server exists: it waits in the backlog.
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<std::uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&to), sizeof to), 0) << std::strerror(errno);

  const int fd = take_reserved_listener(port);
  ASSERT_GE(fd, 0);
  const int accepted = ::accept(fd, nullptr, nullptr);
  EXPECT_GE(accepted, 0) << "the early peer is served by the claimed socket";
  EXPECT_EQ(take_reserved_listener(port), -1) << "a reservation is claimed once";
  EXPECT_EQ(take_reserved_listener(1), -1) << "a port this process never reserved";
  for (int f : {accepted, client, fd}) ::close(f);
}

TEST(listen_tcp, binds_the_named_address_only_and_names_what_fails) {
  const int fd = listen_tcp("127.0.0.1", 0, "probe");
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  EXPECT_EQ(ntohl(a.sin_addr.s_addr), INADDR_LOOPBACK);
  ::close(fd);
  try {
    ::close(listen_tcp("no-such-host.invalid", 0, "probe"));
    FAIL() << "an unresolvable host";
  } catch (const system_error& e) {
    EXPECT_NE(std::string(e.what()).find("probe: cannot resolve 'no-such-host.invalid'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace troupe
