// Hugging Face model directories <-> causal_lm: `config.json` plus `model.safetensors`
// (or shards with `model.safetensors.index.json`). What save_pretrained writes,
// transformers' from_pretrained loads, and the other way round.
#pragma once

#include <string>

#include "policies/causal_lm.hpp"

namespace troupe {

struct load_options {
  torch::Dtype dtype = torch::kFloat32;  // the model's compute dtype
  torch::Device device = torch::kCPU;
};

// Loads `dir`. Every expected tensor must be present with the config's shape and a
// floating dtype (F32, BF16 or F16, converted to opts.dtype); lm_head.weight may be
// absent only when embeddings are tied. Throws input_error naming the file and the
// tensor or key for a missing, misshapen, mistyped or unexpected tensor, and for
// config errors (model_config.hpp).
causal_lm load_pretrained(const std::string& dir, const load_options& opts = {});

// Copies the weights saved at `dir` into `model` (in place, keeping its dtype and
// device): a resumed trainer's policy, or a reference restored before training goes on.
// Throws input_error naming `dir` when its tensors do not match the model's names and
// shapes.
void load_weights(causal_lm& model, const std::string& dir);

// Writes `model` into `dir` (created if needed) as config.json + model.safetensors in
// `dtype` (shards above `max_shard_bytes`). Tied embeddings are stored once, as
// transformers does. The directory's files are replaced atomically one by one.
void save_pretrained(causal_lm& model, const std::string& dir, torch::Dtype dtype = torch::kFloat32,
                     std::size_t max_shard_bytes = std::size_t{5} << 30);

}  // namespace troupe
