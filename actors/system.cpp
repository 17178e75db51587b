#include "actors/system.hpp"

#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <chrono>
#include <thread>

#include "actors/errors.hpp"
#include "actors/message_types.hpp"

namespace troupe {

std::size_t scheduler_threads(const system_section& sys) {
  if (sys.threads > 0) return static_cast<std::size_t>(sys.threads);
  return std::max(1u, std::thread::hardware_concurrency());
}

void configure_actor_system(caf::actor_system_config& cfg, const system_section& sys) {
  cfg.set("scheduler.max-threads", scheduler_threads(sys));
  // The middleman and its TLS variant, so any actor system can be a cluster head or
  // worker (actors/cluster.hpp). Heartbeats let a node notice a peer that vanished
  // without closing its connection (a host that froze or lost its network).
  cfg.load<caf::io::middleman>();
  cfg.load<caf::openssl::manager>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::seconds(2)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(20)});
  cfg.add_error_category(errc_category,
                         [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
                           return render(caf::error{code, errc_category, ctx});
                         });
  register_message_types(cfg);
}

}  // namespace troupe
