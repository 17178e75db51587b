#include "actors/system.hpp"

#include <thread>

#include "actors/cluster_library.hpp"

#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"

namespace troupe {

std::size_t scheduler_threads(const system_section& sys) {
  if (sys.threads > 0) return static_cast<std::size_t>(sys.threads);
  return std::max(1u, std::thread::hardware_concurrency());
}

void configure_actor_system(caf::actor_system_config& cfg, const system_section& sys) {
  cfg.set("scheduler.max-threads", scheduler_threads(sys));
  // The middleman and caf_openssl, from the cluster library loaded on first use
  // (actors/cluster_library.hpp): any actor system can be a cluster head or worker.
  cluster_library().configure(cfg);
  cfg.add_error_category(errc_category,
                         [](std::uint8_t code, caf::atom_value, const caf::message& ctx) {
                           return render(caf::error{code, errc_category, ctx});
                         });
  register_message_types(cfg);
}

}  // namespace troupe
