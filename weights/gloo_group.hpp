// Joining a c10d Gloo process group over a TCPStore rendezvous: shared by the weight
// transport (weights/weight_transport.cpp) and the data-parallel trainer group
// (algorithms/data_parallel_gloo.cpp). Includes c10d: only sources compiled with
// weights/gloo_headers on their include path may include it (actors/CMakeLists.txt).
#pragma once

// ProcessGroupGloo.hpp is compiled only under USE_C10D_GLOO (the wheel was built with it;
// its CMake config does not say so). Its gloo/ includes resolve to weights/gloo_headers/.
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <string>

namespace troupe {

struct gloo_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::chrono::milliseconds timeout{0};
};

// Rank 0 serves the TCPStore on host:port; Gloo binds to `host` as well. Blocks until
// every rank has joined. `who` starts every message ("weight transport (gloo)").
// Throws input_error for a rank outside [0, world_size), a port outside 1..65535 or a
// timeout <= 0, system_error naming the rank and address when the rendezvous fails.
gloo_group join_gloo_group(const std::string& host, int port, int rank, int world_size, double timeout_s,
                           const std::string& who);

}  // namespace troupe
