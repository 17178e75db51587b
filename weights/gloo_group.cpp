#include "weights/gloo_group.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "weights/tcp_rendezvous.hpp"
#include "core/error.hpp"

namespace troupe {

namespace {

// Rank 0's listening socket for the TCPStore, bound to `host` (its first address) and
// `port`: handed to c10d (TCPStoreOptions::masterListenFd), whose own server would listen
// on every interface. The store has neither encryption nor authentication, so it must
// listen where the user said, never on 0.0.0.0 or ::.
int listen_on(const std::string& host, int port, const std::string& who) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0 || found == nullptr)
    throw system_error(who + ": cannot resolve '" + host + "': " + ::gai_strerror(rc));
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = errno;
  if (fd >= 0) {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, found->ai_addr, found->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) {
      ::freeaddrinfo(found);
      return fd;
    }
    err = errno;
    ::close(fd);
  }
  ::freeaddrinfo(found);
  throw system_error(who + ": cannot listen on " + host + ":" + service + ": " + std::strerror(err));
}

}  // namespace

tcp_rendezvous join_tcp_store(const std::string& host, int port, int rank, int world_size, double timeout_s,
                              const std::string& who) {
  const auto bad = [&](const std::string& what) { return input_error(who + ": " + what); };
  if (world_size < 1) throw bad("world_size must be at least 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw bad("rank " + std::to_string(rank) + " is outside [0, " + std::to_string(world_size) + ")");
  if (port < 1 || port > 65535) throw bad("port must be in 1..65535, got " + std::to_string(port));
  if (!(timeout_s > 0)) throw bad("timeout_s must be > 0");

  tcp_rendezvous r;
  r.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000));
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = static_cast<std::size_t>(world_size);
    so.waitWorkers = false;
    so.timeout = r.timeout;
    if (so.isServer) so.masterListenFd = listen_on(host, port, who);  // c10d owns it from here
    r.store = c10::make_intrusive<c10d::TCPStore>(host, so);
  } catch (const system_error&) {
    throw;
  } catch (const std::exception& e) {
    throw system_error(who + ": rank " + std::to_string(rank) + " could not join " + host + ":" + std::to_string(port) +
                       ": " + e.what());
  }
  return r;
}

gloo_group join_gloo_group(const std::string& host, int port, int rank, int world_size, double timeout_s,
                           const std::string& who) {
  auto r = join_tcp_store(host, port, rank, world_size, timeout_s, who);
  gloo_group g;
  g.store = std::move(r.store);
  g.timeout = r.timeout;
  try {
    auto go = c10d::ProcessGroupGloo::Options::create(g.timeout);
    go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    g.group = c10::make_intrusive<c10d::ProcessGroupGloo>(g.store, rank, world_size, go);
  } catch (const std::exception& e) {
    throw system_error(who + ": rank " + std::to_string(rank) + " could not join " + host + ":" + std::to_string(port) +
                       ": " + e.what());
  }
  return g;
}

}  // namespace troupe
