// The data_parallel_group of algorithms/data_parallel.hpp over PyTorch c10d's
// ProcessGroupGloo with a TCPStore rendezvous (weights/gloo_group.hpp). CPU tensors on
// the wire: tensors elsewhere are staged through the host. NCCL, for GPU ranks, is not
// here yet.
#pragma once

#include <memory>

#include "algorithms/data_parallel_options.hpp"
#include "algorithms/data_parallel.hpp"

namespace troupe {

// Joins the group (blocks until all world_size ranks have, or throws system_error after
// timeout_s naming the rank and address; input_error for bad options).
// all_reduce_sum and broadcast pack consecutive tensors of one dtype into flat buckets of
// up to bucket_bytes (one collective per bucket, not per tensor); a CPU contiguous
// tensor of a bucket of its own is reduced in place. A failed collective throws
// system_error "data-parallel rank R of N: <collective> of <what> failed ..." with c10d's
// reason, and every later call throws at once.
std::shared_ptr<data_parallel_group> join_data_parallel_group(const data_parallel_options& options);

}  // namespace troupe
