// The torch side of weights/weight_sync.hpp: a published copy of a policy's parameters.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "weights/weight_sync.hpp"
#include "policies/causal_lm.hpp"
#include "weights/fp8_weights_config.hpp"

namespace troupe {

class weight_snapshot {
 public:
  // Copies `model`'s parameters (detached clones on their device).
  explicit weight_snapshot(causal_lm& model);
  // Copies the snapshot into `model`'s parameters. Throws input_error when the names or
  // shapes differ (a snapshot of another model).
  void load_into(causal_lm& model) const;
  // The same for a named weights map (weights/weight_transport.hpp).
  explicit weight_snapshot(const torch::OrderedDict<std::string, torch::Tensor>& weights);
  void load_into(torch::OrderedDict<std::string, torch::Tensor>& weights) const;

  std::vector<std::string> names;
  std::vector<torch::Tensor> tensors;
};

// What a trainer publishes after a step: a snapshot of `policy`'s parameters under
// `version`; with `fp8`, of those parameters after the codec's round trip (quantized,
// then dequantized), which is what a generator gets over an FP8 wire.
weight_update publish_weights(causal_lm& policy, std::int64_t version,
                              const std::optional<fp8_weights_config>& fp8 = std::nullopt);

}  // namespace troupe
