// The torch side of actors/weight_sync.hpp: a published copy of a policy's parameters.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "actors/weight_sync.hpp"
#include "policies/causal_lm.hpp"

namespace troupe {

class weight_snapshot {
 public:
  // Copies `model`'s parameters (detached clones on their device).
  explicit weight_snapshot(causal_lm& model);
  // Copies the snapshot into `model`'s parameters. Throws input_error when the names or
  // shapes differ (a snapshot of another model).
  void load_into(causal_lm& model) const;
  // The same for a named weights map (actors/weight_transport.hpp).
  explicit weight_snapshot(const torch::OrderedDict<std::string, torch::Tensor>& weights);
  void load_into(torch::OrderedDict<std::string, torch::Tensor>& weights) const;

  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
};

}  // namespace troupe
