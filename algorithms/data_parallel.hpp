// Data-parallel training: the collectives the trainer core needs, behind an interface,
// so that policies/ stays free of c10d. N ranks each hold a replica of the policy and
// train on a shard of the global batch; trainer::train_step (algorithms/trainer.hpp) then
// sums the loss normalizers before any loss is computed and the gradients after the
// last microbatch, so that N ranks take the update one rank takes on the whole batch.
//
// The implementation over PyTorch c10d (Gloo, CPU tensors on the wire) is in
// algorithms/data_parallel_gloo.hpp; NCCL for GPUs across ranks is not there yet.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace troupe {

// A group of world_size() ranks. Every method is a collective: every rank calls it, in
// the same order, with tensors of the same count, shapes and dtypes. `what` names the
// collective in errors ("gradients", "loss normalizers", ...). A lost rank or one that
// does not arrive within the group's timeout makes the call throw system_error on the
// others, naming this rank and `what`; the group is unusable afterwards.
class data_parallel_group {
 public:
  virtual ~data_parallel_group() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;

  // Sums each tensor elementwise over the ranks, in place. Every rank ends with the
  // same bytes (the reduction is computed once and shared), so decisions taken from the
  // result (NaN skip, grad norm) agree. Tensors may be on any device and non-contiguous.
  virtual void all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what) = 0;
  // Rank 0's values into every rank's tensors, in place.
  virtual void broadcast(std::vector<torch::Tensor>& tensors, const std::string& what) = 0;
  // Every rank's `bytes` (sizes may differ), in rank order.
  virtual std::vector<std::string> all_gather(const std::string& bytes, const std::string& what) = 0;
};

}  // namespace troupe
