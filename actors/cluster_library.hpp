// The network half of troupe is loaded on demand, like LibTorch (torch_plugin.hpp):
// CAF's middleman (libcaf_io), caf_openssl and OpenSSL cost about 5 ms of loading and
// relocation at every start, which `troupe --help`, `troupe runs` or an experiment
// config check should not pay. They live in libtroupe_cluster.so (cli/cluster_entry.cpp
// and cli/cmd_worker.cpp over libtroupe_distributed.so, distributed/cluster*.cpp), which
// cluster_library() dlopens the first time an actor system is configured or a cluster
// command runs.
//
// Code that uses the cluster API (distributed/cluster.hpp) links troupe_distributed directly;
// this table is only what the troupe_actors library and the binary need from it.
#pragma once

#include <caf/actor_system_config.hpp>

#include <string>
#include <vector>

namespace troupe {

struct cluster_library_api {
  static constexpr int current_abi = 1;
  int abi_version = current_abi;
  // Loads the middleman and caf_openssl into `cfg`, with troupe's heartbeat settings.
  void (*configure)(caf::actor_system_config& cfg) = nullptr;
  // `troupe worker ARGS...` and `troupe cluster ARGS...` (cli/cmd_worker.cpp).
  int (*cmd_worker)(const std::vector<std::string>& args) = nullptr;
  int (*cmd_cluster)(const std::vector<std::string>& args) = nullptr;
};

inline constexpr const char* cluster_library_symbol = "troupe_cluster_library_api";

// Loads libtroupe_cluster.so once ($TROUPE_CLUSTER_LIBRARY, else beside
// libtroupe_actors.so) and returns its API. Throws system_error naming the paths tried.
const cluster_library_api& cluster_library();

}  // namespace troupe
