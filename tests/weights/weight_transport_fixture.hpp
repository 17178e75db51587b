// The weights that weight_transport_test.cpp sends and weight_transport_peer.cpp receives:
// Llama-like names, fp32 and bf16, a ragged 2-D weight, one larger than a 1 MiB bucket,
// 1-D norms and biases, and an integer buffer.
#pragma once

#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <string_view>

#include "weights/weight_transport.hpp"
#include "core/hash.hpp"

namespace troupe::testing {

// `seed` 0 gives zeros (a receiver before its first update).
inline named_tensors transport_weights(int seed) {
  torch::manual_seed(seed);
  auto make = [seed](std::vector<std::int64_t> shape, torch::ScalarType dtype) {
    auto t = seed == 0 ? torch::zeros(shape) : torch::randn(shape) * 0.02;
    return t.to(dtype);
  };
  named_tensors w;
  w.insert("model.embed_tokens.weight", make({320, 64}, torch::kBFloat16));
  w.insert("model.layers.0.self_attn.q_proj.weight", make({300, 260}, torch::kFloat32));
  w.insert("model.layers.0.self_attn.q_proj.bias", make({300}, torch::kFloat32));
  w.insert("model.layers.0.mlp.down_proj.weight", make({1000, 700}, torch::kFloat32));
  w.insert("model.layers.0.mlp.up_proj.weight", make({64, 200}, torch::kBFloat16));
  w.insert("model.norm.weight", make({64}, torch::kFloat32));
  w.insert("step", seed == 0 ? torch::zeros({1}, torch::kInt64) : torch::full({1}, seed, torch::kInt64));
  return w;
}

inline std::uint64_t bytes_hash(const torch::Tensor& t) {
  auto c = t.detach().cpu().contiguous();
  return fnv1a(std::string_view(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size()));
}

}  // namespace troupe::testing
