#include "weights/weight_snapshot.hpp"

#include "core/error.hpp"
#include "weights/fp8_weights.hpp"

namespace troupe {

weight_snapshot::weight_snapshot(causal_lm& model) : weight_snapshot(model->named_parameters()) {}

weight_snapshot::weight_snapshot(const torch::OrderedDict<std::string, torch::Tensor>& weights) {
  torch::NoGradGuard g;
  for (const auto& p : weights) {
    names.push_back(p.key());
    tensors.push_back(p.value().detach().clone());
  }
}

void weight_snapshot::load_into(causal_lm& model) const {
  auto params = model->named_parameters();
  load_into(params);
}

void weight_snapshot::load_into(torch::OrderedDict<std::string, torch::Tensor>& params) const {
  torch::NoGradGuard g;
  if (params.size() != tensors.size())
    throw input_error("weight update: " + std::to_string(tensors.size()) + " tensors for a model with " +
                      std::to_string(params.size()));
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    auto* p = params.find(names[i]);
    if (p == nullptr || !p->sizes().equals(tensors[i].sizes()))
      throw input_error("weight update: tensor '" + names[i] + "' does not fit this model");
    p->copy_(tensors[i]);
  }
}

weight_update publish_weights(causal_lm& policy, std::int64_t version, const std::optional<fp8_weights_config>& fp8) {
  if (!fp8) return weight_update{version, std::make_shared<const weight_snapshot>(policy)};
  torch::NoGradGuard no_grad;
  torch::OrderedDict<std::string, torch::Tensor> weights;
  for (const auto& p : policy->named_parameters()) weights.insert(p.key(), p.value().detach());
  return weight_update{version, std::make_shared<const weight_snapshot>(fp8_decode_weights(fp8_encode_weights(weights, *fp8)))};
}

}  // namespace troupe
