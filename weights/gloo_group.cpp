#include "weights/gloo_group.hpp"

#include "weights/tcp_rendezvous.hpp"
#include "core/error.hpp"
#include "core/net.hpp"

namespace troupe {

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
    // Rank 0 hands c10d its own listener, bound to `host` (c10d's would listen on every
    // interface, and the store has neither encryption nor authentication): the one this
    // process reserved for the port (core/net.hpp), or a new one. c10d owns it from here.
    if (so.isServer) {
      so.masterListenFd = take_reserved_listener(port);
      if (so.masterListenFd < 0) so.masterListenFd = listen_tcp(host, port, who);
    }
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
