// Bootstrapping CAF for troupe: the `system:` config section, and one function that
// prepares an actor_system_config with troupe's scheduler settings, error category and
// message types. The actor_system itself is created by the caller, on the stack of
// main() or a test (a static actor system crashes at exit).
#pragma once

#include <caf/actor_system_config.hpp>

#include <string>

#include "core/config_binding.hpp"

namespace troupe {

struct system_section {
  int threads = 0;               // scheduler worker threads; 0 = one per core
  std::string progress = "auto"; // progress display: auto | bar | periodic | log | off

  template <class V>
  void describe(V& v) {
    v.field("threads", threads, "CAF scheduler threads; 0 uses one per core", in_range(0, 1024));
    v.field("progress", progress,
            "progress display: auto (bar on a terminal, periodic lines otherwise), bar, periodic (a line every 5% "
            "or 10 s, and the last), log (a line per step), off",
            one_of{"auto", "bar", "periodic", "log", "off"});
  }
};

// Fills `cfg`: scheduler.max-threads from `sys`, the "troupe" error category, every
// troupe message type (actors/protocol/message_types.hpp), and the middleman with caf_openssl
// (loading libtroupe_cluster.so on first use; system_error if it cannot be found).
void configure_actor_system(caf::actor_system_config& cfg, const system_section& sys);

// The thread count configure_actor_system() gives the scheduler for `sys`.
std::size_t scheduler_threads(const system_section& sys);

}  // namespace troupe
