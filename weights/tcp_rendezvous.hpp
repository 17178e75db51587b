// The c10d TCPStore rendezvous of the remote transports: rank 0 serves the store on
// host:port, the others connect to it. Shared by the Gloo groups (weights/gloo_group.hpp)
// and the NCCL weight transport (weights/nccl_weight_transport.cpp), which publishes its
// ncclUniqueId there.
#pragma once

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <string>

namespace troupe {

struct tcp_rendezvous {
  c10::intrusive_ptr<c10d::Store> store;
  std::chrono::milliseconds timeout{0};
};

// Throws input_error (starting with `who`) for a rank outside [0, world_size), a port
// outside 1..65535 or a timeout <= 0, and system_error naming the rank and address when
// the store cannot be served or reached within timeout_s.
tcp_rendezvous join_tcp_store(const std::string& host, int port, int rank, int world_size, double timeout_s,
                              const std::string& who);

}  // namespace troupe
