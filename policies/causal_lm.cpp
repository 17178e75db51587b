#include "policies/causal_lm.hpp"

#include <cmath>

#include "core/error.hpp"

namespace troupe {

namespace F = torch::nn::functional;

torch::Dtype parse_torch_dtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  throw input_error("dtype '" + name + "': expected float32, bfloat16 or float16");
}

torch::Device parse_torch_device(const std::string& name) {
  if (name != "cpu" && name.rfind("cuda", 0) != 0)
    throw input_error("device '" + name + "': expected cpu, cuda or cuda:N");
  torch::Device d = [&] {
    try {
      return torch::Device(name);
    } catch (const std::exception&) {
      throw input_error("device '" + name + "': expected cpu, cuda or cuda:N");
    }
  }();
  if (d.is_cuda()) {
    auto n = static_cast<int>(torch::cuda::device_count());
    if (n == 0) throw system_error("device '" + name + "': no CUDA device is visible");
    if (d.has_index() && d.index() >= n)
      throw system_error("device '" + name + "': only " + std::to_string(n) + " CUDA devices are visible");
  }
  return d;
}

torch::Tensor rope_inv_freq(const model_config& c) {
  // inv_freq[i] = theta^(-2i / hd), i in [0, hd/2)
  auto idx = torch::arange(0, c.head_dim, 2, torch::kFloat64);
  auto inv = 1.0 / torch::pow(c.rope.theta, idx / static_cast<double>(c.head_dim));
  if (c.rope.type == "llama3") {
    // transformers' _compute_llama3_parameters: long wavelengths are divided by
    // `factor`, short ones kept, the band between interpolated smoothly.
    const double old_len = static_cast<double>(c.rope.original_max_position_embeddings);
    const double low_wavelen = old_len / c.rope.low_freq_factor;
    const double high_wavelen = old_len / c.rope.high_freq_factor;
    auto wavelen = 2 * M_PI / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / c.rope.factor, inv);
    auto smooth = (old_len / wavelen - c.rope.low_freq_factor) / (c.rope.high_freq_factor - c.rope.low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / c.rope.factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = torch::where(medium, smoothed, scaled);
  }
  return inv.to(torch::kFloat32);
}

namespace {

torch::Tensor rotate_half(const torch::Tensor& x) {  // (..., hd)
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

}  // namespace

// --- rms_norm --------------------------------------------------------------------

rms_norm_impl::rms_norm_impl(std::int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor rms_norm_impl::forward(const torch::Tensor& x) {
  // In float32 whatever the input dtype, then back (as transformers does).
  auto h = x.to(torch::kFloat32);
  h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * h.to(x.scalar_type());
}

// --- attention ----------------------------------------------------------------------

attention_impl::attention_impl(const model_config& c)
  : nh_(c.num_attention_heads), nkv_(c.num_key_value_heads), hd_(c.head_dim) {
  auto lin = [](std::int64_t in, std::int64_t out, bool bias) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  };
  q_proj = register_module("q_proj", lin(c.hidden_size, nh_ * hd_, c.qkv_bias));
  k_proj = register_module("k_proj", lin(c.hidden_size, nkv_ * hd_, c.qkv_bias));
  v_proj = register_module("v_proj", lin(c.hidden_size, nkv_ * hd_, c.qkv_bias));
  o_proj = register_module("o_proj", lin(nh_ * hd_, c.hidden_size, c.o_bias));
}

torch::Tensor attention_impl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                      const torch::Tensor& mask, torch::Tensor* k_cache, torch::Tensor* v_cache,
                                      std::int64_t cache_length) {
  const auto B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, nh_, hd_}).transpose(1, 2);   // (B, nh, T, hd)
  auto k = k_proj(x).view({B, T, nkv_, hd_}).transpose(1, 2);  // (B, nkv, T, hd)
  auto v = v_proj(x).view({B, T, nkv_, hd_}).transpose(1, 2);  // (B, nkv, T, hd)
  auto c = cos.unsqueeze(1).to(q.scalar_type());                // (B, 1, T, hd)
  auto s = sin.unsqueeze(1).to(q.scalar_type());
  q = q * c + rotate_half(q) * s;
  k = k * c + rotate_half(k) * s;
  if (k_cache != nullptr) {
    k_cache->narrow(2, cache_length, T).copy_(k);
    v_cache->narrow(2, cache_length, T).copy_(v);
    k = k_cache->narrow(2, 0, cache_length + T);  // (B, nkv, S, hd)
    v = v_cache->narrow(2, 0, cache_length + T);
  }
  auto out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, std::nullopt, /*enable_gqa=*/nkv_ != nh_);
  return o_proj(out.transpose(1, 2).reshape({B, T, nh_ * hd_}));  // (B, T, H)
}

// --- mlp, layer, decoder ---------------------------------------------------------------

mlp_impl::mlp_impl(const model_config& c) {
  auto lin = [&](std::int64_t in, std::int64_t out) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(c.mlp_bias));
  };
  gate_proj = register_module("gate_proj", lin(c.hidden_size, c.intermediate_size));
  up_proj = register_module("up_proj", lin(c.hidden_size, c.intermediate_size));
  down_proj = register_module("down_proj", lin(c.intermediate_size, c.hidden_size));
}

torch::Tensor mlp_impl::forward(const torch::Tensor& x) {
  return down_proj(F::silu(gate_proj(x)) * up_proj(x));
}

decoder_layer_impl::decoder_layer_impl(const model_config& c) {
  self_attn = register_module("self_attn", attention(c));
  mlp_ = register_module("mlp", mlp(c));
  input_layernorm = register_module("input_layernorm", rms_norm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", rms_norm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor decoder_layer_impl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& mask, torch::Tensor* k_cache, torch::Tensor* v_cache,
                                          std::int64_t cache_length) {
  auto h = x + self_attn(input_layernorm(x), cos, sin, mask, k_cache, v_cache, cache_length);
  return h + mlp_(post_attention_layernorm(h));
}

decoder_impl::decoder_impl(const model_config& c) {
  // The pad row gets no gradient from lookups, as in transformers. It matters beyond
  // parity: transformers initializes that row to zeros, and many checkpoints use the pad
  // id as BOS too (pad = bos = eos = 0). A zero BOS embedding keeps slot 0's residual
  // stream exactly zero through every layer (its attention sees only itself, v = 0,
  // MLP(0) = 0), where each RMSNorm's backward is rsqrt(eps) * weight (1000x at eps 1e-6).
  // Twelve layers multiply the gradient reaching that row to ~1e25: its fp32 norm
  // overflows and every GRPO step is skipped. The weights' own gradients stay small
  // (the activations at slot 0 are zero); only the embedding row collects it.
  auto emb = torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size);
  if (auto pad = c.padding_idx()) emb.padding_idx(*pad);
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(emb));
  layers = register_module("layers", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(decoder_layer(c));
  norm = register_module("norm", rms_norm(c.hidden_size, c.rms_norm_eps));
}

// --- causal_lm -------------------------------------------------------------------------

causal_lm_impl::causal_lm_impl(model_config c) : config_(std::move(c)) {
  config_.validate("model config");
  model = register_module("model", decoder(config_));
  if (!config_.tie_word_embeddings)
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
  inv_freq_ = register_buffer("inv_freq", rope_inv_freq(config_));
}

torch::Device causal_lm_impl::device() const { return model->embed_tokens->weight.device(); }
torch::Dtype causal_lm_impl::dtype() const { return model->embed_tokens->weight.scalar_type(); }

torch::Tensor causal_lm_impl::run(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                  const torch::Tensor& key_mask, kv_cache* cache, const torch::Tensor& segment_ids) {
  const auto T = input_ids.size(1);
  const std::int64_t past = cache ? cache->length : 0;
  const auto S = past + T;
  TORCH_CHECK(key_mask.size(1) == S, "key_mask has ", key_mask.size(1), " columns, expected ", S);
  if (cache != nullptr && S > cache->capacity())
    throw input_error("kv cache: " + std::to_string(S) + " positions exceed its capacity " +
                      std::to_string(cache->capacity()));

  // RoPE angles in float32 (B, T, hd).
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq_.to(input_ids.device()).view({1, 1, -1});
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();

  // mask (B, 1, T, S): a real key at or before the query's own slot. Each query may
  // always see its own slot, so rows of padding queries never become all -inf (NaN).
  auto q_slot = torch::arange(past, S, input_ids.options().dtype(torch::kInt64)).view({1, T, 1});
  auto k_slot = torch::arange(0, S, input_ids.options().dtype(torch::kInt64)).view({1, 1, S});
  auto causal = k_slot <= q_slot;                                          // (1, T, S)
  auto mask = causal.logical_and(key_mask.to(torch::kBool).unsqueeze(1));  // (B, T, S)
  if (segment_ids.defined())  // packed rows: only keys of the query's own segment (S == T)
    mask = mask.logical_and(segment_ids.unsqueeze(2) == segment_ids.unsqueeze(1));
  mask = mask.logical_or(k_slot == q_slot).unsqueeze(1);                   // (B, 1, T, S)

  auto h = model->embed_tokens(input_ids);  // (B, T, H)
  for (std::size_t i = 0; i < model->layers->size(); ++i) {
    auto layer = model->layers->ptr<decoder_layer_impl>(i);
    if (cache != nullptr) h = layer->forward(h, cos, sin, mask, &cache->k[i], &cache->v[i], past);
    else h = layer->forward(h, cos, sin, mask, nullptr, nullptr, 0);
  }
  if (cache != nullptr) cache->length = S;
  return model->norm(h);
}

torch::Tensor causal_lm_impl::logits(const torch::Tensor& hidden) {
  if (config_.tie_word_embeddings) return F::linear(hidden, model->embed_tokens->weight);
  return lm_head(hidden);
}

torch::Tensor causal_lm_impl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  // Positions count real tokens only, so left padding does not shift them.
  auto positions = (attention_mask.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);
  return run(input_ids, positions, attention_mask, nullptr);
}

torch::Tensor causal_lm_impl::hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                            const torch::Tensor& segment_ids) {
  TORCH_CHECK(segment_ids.sizes() == input_ids.sizes(), "segment_ids must have the shape of input_ids");
  const auto T = input_ids.size(1);
  auto seg = segment_ids.to(input_ids.device(), torch::kInt64);
  // Position = slot - first slot of the token's segment: mark each segment's start with
  // its slot, and carry the latest start forward with a running max.
  auto slot = torch::arange(T, seg.options()).view({1, T}).expand_as(seg);  // (B, T)
  auto starts = torch::ones_like(seg, torch::kBool);
  if (T > 1) starts.narrow(1, 1, T - 1).copy_(seg.narrow(1, 1, T - 1) != seg.narrow(1, 0, T - 1));
  auto first = std::get<0>(torch::where(starts, slot, torch::zeros_like(slot)).cummax(1));
  return run(input_ids, slot - first, attention_mask, nullptr, seg);
}

torch::Tensor causal_lm_impl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  return logits(hidden_states(input_ids, attention_mask));
}

torch::Tensor causal_lm_impl::forward_cached(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                                             const torch::Tensor& key_mask, kv_cache& cache) {
  return run(input_ids, position_ids, key_mask, &cache);
}

kv_cache causal_lm_impl::make_cache(std::int64_t batch, std::int64_t capacity) const {
  kv_cache c;
  auto opts = torch::TensorOptions().dtype(dtype()).device(device());
  for (std::int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    c.k.push_back(torch::zeros({batch, config_.num_key_value_heads, capacity, config_.head_dim}, opts));
    c.v.push_back(torch::zeros({batch, config_.num_key_value_heads, capacity, config_.head_dim}, opts));
  }
  return c;
}

void causal_lm_impl::init_weights(std::uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& p : named_parameters()) {
    const auto& name = p.key();
    auto& t = p.value();
    torch::Tensor fresh;
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) {
      fresh = torch::zeros(t.sizes(), torch::kFloat32);
    } else if (name.find("norm") != std::string::npos) {
      fresh = torch::ones(t.sizes(), torch::kFloat32);
    } else {
      fresh = at::normal(0.0, config_.initializer_range, t.sizes(), gen, torch::TensorOptions(torch::kFloat32));
    }
    t.copy_(fresh);  // drawn on the CPU in float32: the same weights on every device and dtype
  }
  // The pad row starts at zero, as transformers' _init_weights leaves it.
  if (auto pad = config_.padding_idx()) model->embed_tokens->weight[*pad].zero_();
}

}  // namespace troupe
