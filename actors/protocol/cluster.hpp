// What travels between a cluster head and its workers (distributed/cluster.hpp): the
// facts a worker reports when it joins.
#pragma once

#include <cstdint>
#include <string>

namespace troupe {

// What a worker says about itself when it joins.
struct worker_facts {
  std::string name;
  std::string host;      // its hostname
  std::int64_t pid = 0;
  int cores = 0;         // std::thread::hardware_concurrency()
  int cuda_devices = 0;  // NVIDIA devices it sees (CUDA_VISIBLE_DEVICES honoured); no CUDA needed
  int protocol = 0;      // cluster protocol version; the head refuses another one
  // Without TLS: the head's join secret (distributed/cluster_secret.hpp); empty with TLS.
  std::string join_secret;
};

}  // namespace troupe
