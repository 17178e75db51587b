// What data_parallel_test.cpp and data_parallel_rank.cpp (one rank as a process) both
// run: a tiny model, fixed global batches, and K GRPO steps of the clipped
// policy-gradient loss on this rank's contiguous shard of each batch.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "actors/protocol/trainer.hpp"
#include "algorithms/losses.hpp"
#include "policies/model_config.hpp"
#include "algorithms/trainer.hpp"

namespace troupe::testing {

constexpr std::int64_t dp_vocab = 61;
constexpr std::int64_t dp_rows = 8;  // global batch

inline causal_lm dp_model(torch::Dtype dtype, std::uint64_t seed) {
  policy_section p;
  p.hidden_size = 32;
  p.intermediate_size = 64;
  p.num_hidden_layers = 2;
  p.num_attention_heads = 4;
  p.num_key_value_heads = 2;
  p.max_position_embeddings = 64;
  auto c = small_model_config(p, dp_vocab);
  c.initializer_range = 0.2;
  causal_lm m(c);
  m->init_weights(seed);
  m->to(dtype);
  return m;
}

// The global batch of step `step`: 8 right-padded rows of different lengths, row 6
// without a response token, advantages, and a perturbation of lp_old (so that ratios
// are not 1 and the clip is active for some tokens).
inline train_batch dp_global_batch(std::int64_t step) {
  const std::vector<std::int64_t> len = {5, 16, 9, 12, 7, 16, 3, 11};
  const std::vector<std::int64_t> prompt = {2, 4, 3, 5, 2, 6, 3, 1};
  const std::int64_t B = dp_rows, T = 16;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(100 + step));
  train_batch b;
  b.input_ids = torch::randint(0, dp_vocab, {B, T}, gen, torch::TensorOptions(torch::kInt64));
  b.attention_mask = torch::zeros({B, T}, torch::kInt64);
  b.response_mask = torch::zeros({B, T}, torch::kFloat32);
  for (std::int64_t i = 0; i < B; ++i) {
    const auto L = len[static_cast<std::size_t>((i + step) % B)], P = prompt[static_cast<std::size_t>((i + step) % B)];
    b.attention_mask[i].narrow(0, 0, L).fill_(1);
    if (i != 6) b.response_mask[i].narrow(0, P, L - P).fill_(1);
    b.input_ids[i].narrow(0, L, T - L).fill_(0);
  }
  b.per_sequence["advantages"] = at::normal(0.0, 1.0, {B}, gen, torch::TensorOptions(torch::kFloat64));
  b.per_token["old_noise"] = at::normal(0.0, 0.3, {B, T}, gen, torch::TensorOptions(torch::kFloat64));
  return b;
}

// Loss modes: token (token-level), sequence (sequence-level), token_kl (token-level with
// a k3 KL term), gspo (sequence-level ratios, sequence-level loss, KL).
inline clipped_pg_config dp_loss_config(const std::string& mode) {
  clipped_pg_config c;
  c.reference_policy_kl_penalty = 0;
  if (mode == "sequence") c.token_level_loss = false;
  if (mode == "token_kl") c.reference_policy_kl_penalty = 0.1;
  if (mode == "gspo") {
    c.token_level_loss = false;
    c.sequence_level_importance_ratios = true;
    c.reference_policy_kl_penalty = 0.05;
    c.eps_low = c.eps_high = 0.05;
  }
  return c;
}

inline trainer_section dp_trainer_config(std::int64_t microbatch) {
  trainer_section t;
  t.lr = 1e-2;
  t.weight_decay = 0.01;
  t.max_grad_norm = 0.5;
  t.microbatch_size = microbatch;
  return t;
}

// One GRPO step of `t` on rows [begin, end) of step `step`'s global batch.
// `nan_advantages`: this shard's advantages are NaN (its loss is not finite).
inline train_step_result dp_step(trainer& t, const std::string& mode, std::int64_t step, std::int64_t begin,
                                 std::int64_t end, bool nan_advantages = false) {
  const auto cfg = dp_loss_config(mode);
  auto b = dp_global_batch(step).slice(begin, end);
  if (nan_advantages) b.per_sequence["advantages"] = torch::full_like(b.per_sequence.at("advantages"), NAN);
  auto noise = b.per_token.at("old_noise");
  b.per_token.erase("old_noise");
  auto mask = b.response_mask.to(torch::kFloat64);
  auto lp_old = t.policy_logprobs(b);
  b.per_token["old_logprobs"] = lp_old + (noise * mask).to(lp_old.dtype());
  if (cfg.reference_policy_kl_penalty != 0) b.per_token["ref_logprobs"] = t.reference_logprobs(b);
  return t.train_step(b, [cfg](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    pg_inputs in;
    in.lp = token_logprobs(policy, mb);
    in.lp_old = mb.extra("old_logprobs");
    if (mb.per_token.count("ref_logprobs")) in.lp_ref = mb.extra("ref_logprobs");
    in.advantages = mb.extra("advantages").to(in.lp.dtype());
    in.mask = mb.response_mask.to(in.lp.dtype());
    return clipped_pg_loss(cfg, in, global);
  });
}

// This rank's contiguous rows of the global batch (the first shards one longer).
inline std::pair<std::int64_t, std::int64_t> dp_shard(int rank, int world) {
  std::int64_t begin = 0;
  for (int k = 0; k < rank; ++k) begin += dp_rows / world + (k < dp_rows % world ? 1 : 0);
  return {begin, begin + dp_rows / world + (rank < dp_rows % world ? 1 : 0)};
}

inline std::vector<torch::Tensor> dp_params(causal_lm& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m->parameters()) out.push_back(p.detach().clone());
  return out;
}

inline void dp_write_metrics(const std::map<std::string, double>& m, const std::string& path) {
  std::ofstream out(path);
  char line[256];
  for (const auto& [k, v] : m) {
    std::snprintf(line, sizeof line, "%s %.17g\n", k.c_str(), v);
    out << line;
  }
}

inline std::map<std::string, double> dp_read_metrics(const std::string& path) {
  std::map<std::string, double> m;
  std::ifstream in(path);
  std::string k;
  double v;
  while (in >> k >> v) m[k] = v;
  return m;
}

}  // namespace troupe::testing

namespace troupe::testing {

// The trainer actor path (spawn_trainer_rank): a GRPO config of a small fp32 model with
// sequence-level loss and a KL term, microbatches of 2.
inline std::string dp_actor_config_text() {
  return "experiment: grpo\n"
         "policy: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, "
         "num_key_value_heads: 2, init_seed: 3}\n"
         "trainer: {lr: 0.001, microbatch_size: 2, max_grad_norm: 0.5}\n"
         "grpo:\n"
         "  loss: {reference_policy_kl_penalty: 0.05, token_level_loss: false}\n";
}

// A fixed rollout batch of 6 rows over the default alphabet's ids (0..15).
inline rollout_batch dp_rollouts(std::int64_t step) {
  rollout_batch b;
  for (int i = 0; i < 6; ++i) {
    std::vector<std::int32_t> p, c;
    std::vector<float> lp;
    for (int j = 0; j < 2 + i % 3; ++j) p.push_back(static_cast<std::int32_t>((i * 7 + j * 3 + step) % 16));
    for (int j = 0; j < 3 + (i * 5) % 7; ++j) {
      c.push_back(static_cast<std::int32_t>((i * 11 + j * 5 + step) % 16));
      lp.push_back(-2.5f - 0.1f * static_cast<float>(j % 4));
    }
    b.prompts.push_back(p);
    b.completions.push_back(c);
    b.gen_logprobs.push_back(lp);
    b.advantages.push_back((i % 2 ? 1.0 : -0.8) * (1 + 0.1 * static_cast<double>(i + step)));
  }
  return b;
}

}  // namespace troupe::testing
