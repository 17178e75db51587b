// Where a data-parallel trainer rank sits in its group (docs/data-parallel.md): the
// options algorithms/data_parallel_gloo.hpp joins with. Torch-free, so configs and
// the torch-free side of a run (distributed/data_parallel.hpp) can hold them.
#pragma once

#include <cstdint>
#include <string>

#include "core/config_binding.hpp"

namespace troupe {

// One rank's place in the group. Rank 0 serves the rendezvous (a c10d TCPStore) on
// host:port; every rank connects to it. Use a port of its own (not the weight
// transport's). A rank that is lost or does not arrive within timeout_s makes the
// others' step fail with a system_error naming the collective.
struct data_parallel_options {
  int rank = 0;
  int world_size = 1;  // 1: not data parallel
  std::string host = "127.0.0.1";
  int port = 29610;
  double timeout_s = 300;  // rendezvous and each collective
  std::int64_t bucket_bytes = std::int64_t{25} << 20;  // gradients are all-reduced in flat buckets of this size

  bool enabled() const { return world_size > 1; }
  // Throws input_error naming `path` and the key for a rank outside [0, world_size),
  // a bad port, timeout or bucket size.
  void validate(const std::string& path) const;

  template <class V>
  void describe(V& v) {
    v.field("rank", rank, "this trainer's rank; 0 serves the rendezvous and reports metrics", in_range<int>(0, 65535));
    v.field("world_size", world_size, "trainer ranks in the group; 1 trains alone", in_range<int>(1, 65536));
    v.field("host", host, "rank 0's address (rendezvous and Gloo)");
    v.field("port", port, "rank 0's rendezvous port", in_range<int>(1, 65535));
    v.field("timeout_s", timeout_s, "a rank that does not arrive within this many seconds fails the step",
            greater_than(0.0));
    v.field("bucket_bytes", bucket_bytes, "gradients are all-reduced in flat buckets of this many bytes",
            in_range<std::int64_t>(1, std::int64_t{1} << 40));
  }
};

}  // namespace troupe
