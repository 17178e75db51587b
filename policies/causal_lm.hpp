// The decoder-only causal LM every actor runs: Llama, Qwen2 and Mistral from one
// implementation (see model_config.hpp for what differs). Module and parameter names
// are Hugging Face's ("model.layers.0.self_attn.q_proj.weight"), so named_parameters()
// maps one to one onto safetensors checkpoints (policies/checkpoint.hpp).
//
// Shapes: B batch, T new tokens, S keys (cache length + T), H hidden, V vocab,
// nh query heads, nkv key/value heads, hd head_dim.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "policies/model_config.hpp"

namespace troupe {

// Preallocated keys and values of every layer for incremental decoding.
struct kv_cache {
  std::vector<torch::Tensor> k;  // per layer (B, nkv, capacity, hd)
  std::vector<torch::Tensor> v;  // per layer (B, nkv, capacity, hd)
  std::int64_t length = 0;       // positions filled so far
  std::int64_t capacity() const { return k.empty() ? 0 : k[0].size(2); }
};

class rms_norm_impl : public torch::nn::Module {
 public:
  rms_norm_impl(std::int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., H) -> (..., H)
  torch::Tensor weight;                           // (H)
 private:
  double eps_;
};
TORCH_MODULE_IMPL(rms_norm, rms_norm_impl);

class attention_impl : public torch::nn::Module {
 public:
  explicit attention_impl(const model_config& c);
  // x (B, T, H); cos, sin (B, T, hd); mask (B, 1, T, S) bool, true = may attend.
  // With a cache, this layer's keys/values are written at [cache.length, +T) of
  // (k_cache, v_cache) and attention runs over the first S = cache.length + T.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, torch::Tensor* k_cache, torch::Tensor* v_cache,
                        std::int64_t cache_length);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  std::int64_t nh_, nkv_, hd_;
};
TORCH_MODULE_IMPL(attention, attention_impl);

class mlp_impl : public torch::nn::Module {
 public:
  explicit mlp_impl(const model_config& c);
  torch::Tensor forward(const torch::Tensor& x);  // SwiGLU: down(silu(gate(x)) * up(x))
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE_IMPL(mlp, mlp_impl);

class decoder_layer_impl : public torch::nn::Module {
 public:
  explicit decoder_layer_impl(const model_config& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, torch::Tensor* k_cache, torch::Tensor* v_cache,
                        std::int64_t cache_length);
  attention self_attn{nullptr};
  mlp mlp_{nullptr};
  rms_norm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE_IMPL(decoder_layer, decoder_layer_impl);

// "model": embeddings, layers, final norm.
class decoder_impl : public torch::nn::Module {
 public:
  explicit decoder_impl(const model_config& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  rms_norm norm{nullptr};
};
TORCH_MODULE_IMPL(decoder, decoder_impl);

class causal_lm_impl : public torch::nn::Module {
 public:
  explicit causal_lm_impl(model_config c);

  // Whole sequences, no cache (training, scoring). input_ids (B, T) int64,
  // attention_mask (B, T) with 1 for real tokens and 0 for padding (left or right).
  // Returns logits (B, T, V) in the model's dtype.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  // forward() without the lm_head: final hidden states (B, T, H). Callers that need
  // logits of a few positions only (scoring, the last token) map those with logits().
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

  // Packed rows (algorithms/sft_data.hpp): segment_ids (B, T) int64 number the sequences
  // of each row (0 on padding). A token attends only to earlier tokens of its own
  // segment and positions restart at 0 in each, so every packed sequence computes what
  // it computes alone. The block-diagonal mask costs nothing extra: attention always
  // takes a dense boolean mask. Returns (B, T, H).
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                              const torch::Tensor& segment_ids);

  // Incremental step over a cache. input_ids (B, T), position_ids (B, T),
  // key_mask (B, cache.length + T) bool: which keys are real tokens. Advances
  // cache.length by T. Returns the final hidden states (B, T, H); logits() maps them.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                               const torch::Tensor& key_mask, kv_cache& cache);

  torch::Tensor logits(const torch::Tensor& hidden);  // (..., H) -> (..., V)

  // A cache for `batch` sequences of up to `capacity` positions, on the model's device
  // and dtype.
  kv_cache make_cache(std::int64_t batch, std::int64_t capacity) const;

  // Re-draws all weights as Hugging Face initializes them: normal(0, initializer_range)
  // for linear and embedding weights, zero biases, unit norms. Seeded.
  void init_weights(std::uint64_t seed);

  const model_config& config() const { return config_; }
  torch::Device device() const;
  torch::Dtype dtype() const;

  decoder model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  // Runs embeddings and layers; `cache` may be null (no caching); `segment_ids` (B, T)
  // may be undefined (one sequence per row).
  torch::Tensor run(const torch::Tensor& input_ids, const torch::Tensor& position_ids, const torch::Tensor& key_mask,
                    kv_cache* cache, const torch::Tensor& segment_ids = {});
  model_config config_;
  torch::Tensor inv_freq_;  // (hd / 2) float32, RoPE frequencies (llama3-scaled if configured)
};
TORCH_MODULE_IMPL(causal_lm, causal_lm_impl);

// RoPE inverse frequencies for `c` (hd / 2), float32, including llama3 scaling.
torch::Tensor rope_inv_freq(const model_config& c);

// Parses "float32" | "bfloat16" | "float16"; input_error otherwise.
torch::Dtype parse_torch_dtype(const std::string& name);
// Parses "cpu" | "cuda" | "cuda:N"; input_error otherwise, system_error for CUDA
// without a device.
torch::Device parse_torch_device(const std::string& name);

}  // namespace troupe
