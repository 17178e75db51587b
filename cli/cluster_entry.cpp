// libtroupe_cluster.so's entry point (actors/cluster_library.hpp).
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <chrono>

#include "actors/cluster_library.hpp"
#include "cli/commands.hpp"

namespace {

void configure_network(caf::actor_system_config& cfg) {
  // The middleman and its TLS variant, so any actor system can be a cluster head or
  // worker (distributed/cluster.hpp). Heartbeats let a node notice a peer that vanished
  // without closing its connection (a host that froze or lost its network).
  cfg.load<caf::io::middleman>();
  cfg.load<caf::openssl::manager>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(2)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(20)});
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const troupe::cluster_library_api* troupe_cluster_library_api() {
  static const troupe::cluster_library_api api = [] {
    troupe::cluster_library_api a;
    a.configure = &configure_network;
    a.cmd_worker = &troupe::cli::cmd_worker;
    a.cmd_cluster = &troupe::cli::cmd_cluster;
    return a;
  }();
  return &api;
}
