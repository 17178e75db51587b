#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "algorithms/data_parallel_gloo.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/policy/trainer_actor.hpp"
#include "weights/weight_snapshot.hpp"
#include "policies/checkpoint.hpp"
#include "algorithms/losses.hpp"
#include "algorithms/trainer.hpp"

namespace troupe {

namespace {

// Rows prompt + completion, right-padded: ids, attention and response masks (B, T), and
// the generator's logprobs placed at the completion positions (B, T).
train_batch make_batch(const std::vector<std::vector<std::int32_t>>& prompts,
                       const std::vector<std::vector<std::int32_t>>& completions,
                       const std::vector<std::vector<float>>* gen_logprobs, std::int64_t pad_id,
                       const std::vector<std::vector<float>>* completion_masks = nullptr) {
  const auto B = static_cast<std::int64_t>(prompts.size());
  if (completions.size() != prompts.size() || (gen_logprobs && gen_logprobs->size() != prompts.size()) ||
      (completion_masks && completion_masks->size() != prompts.size()))
    throw input_error("trainer: batch rows disagree in number");
  std::int64_t T = 0;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    T = std::max<std::int64_t>(T, static_cast<std::int64_t>(prompts[i].size() + completions[i].size()));
  auto ids = torch::full({B, T}, pad_id, torch::kInt64);
  auto attn = torch::zeros({B, T}, torch::kInt64);
  auto resp = torch::zeros({B, T}, torch::kFloat32);
  auto gen = torch::zeros({B, T}, torch::kFloat32);
  auto ids_a = ids.accessor<std::int64_t, 2>();
  auto attn_a = attn.accessor<std::int64_t, 2>();
  auto resp_a = resp.accessor<float, 2>();
  auto gen_a = gen.accessor<float, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<std::size_t>(b)];
    const auto& c = completions[static_cast<std::size_t>(b)];
    if (p.empty()) throw input_error("trainer: row " + std::to_string(b) + " has an empty prompt");
    std::int64_t t = 0;
    for (auto id : p) ids_a[b][t] = id, attn_a[b][t] = 1, ++t;
    for (std::size_t j = 0; j < c.size(); ++j, ++t) {
      ids_a[b][t] = c[j];
      attn_a[b][t] = 1;
      resp_a[b][t] = completion_masks ? (*completion_masks)[static_cast<std::size_t>(b)].at(j) : 1.0f;
      if (gen_logprobs) gen_a[b][t] = (*gen_logprobs)[static_cast<std::size_t>(b)].at(j);
    }
  }
  train_batch batch;
  batch.input_ids = ids;
  batch.attention_mask = attn;
  batch.response_mask = resp;
  if (gen_logprobs) batch.per_token["gen_logprobs"] = gen;
  return batch;
}

struct trainer_state {
  std::unique_ptr<trainer> rl;   // GRPO: optimizer + reference, made when the first rollouts arrive
  std::unique_ptr<trainer> sft;  // the SFT stage's optimizer
  causal_lm policy{nullptr};
  trainer_actor_options opts;
  std::shared_ptr<data_parallel_group> group;  // data parallel: joined with the first trainer
  static inline const char* name = "troupe.trainer";
};

using trainer_actor = caf::stateful_actor<trainer_state>;

// The data-parallel group, joined on first use (blocks until every rank has joined);
// nullptr when training alone.
std::shared_ptr<data_parallel_group> group_of(trainer_actor* self) {
  auto& st = self->state;
  if (!st.group && st.opts.data_parallel.enabled()) st.group = join_data_parallel_group(st.opts.data_parallel);
  return st.group;
}

bool is_rank0(trainer_actor* self) { return self->state.opts.data_parallel.rank == 0; }

trainer& rl_trainer(trainer_actor* self) {
  auto& st = self->state;
  // The reference is the policy as GRPO starts (after SFT), as in NeMo RL.
  if (!st.rl)
    st.rl = std::make_unique<trainer>(st.policy, st.opts.trainer, st.opts.loss.reference_policy_kl_penalty != 0,
                                      group_of(self));
  return *st.rl;
}

// Mean entropy of the policy over the response tokens (`entropy` (B, T), from the
// forward that scored lp_old: trainer::policy_logprobs) and the mean KL of lp_old to
// lp_ref, no grad.
void add_diagnostics(trainer_actor* self, const train_batch& batch, const torch::Tensor& entropy,
                     std::map<std::string, double>& out) {
  torch::NoGradGuard g;
  const auto resp = batch.response_mask.to(torch::kFloat64);  // (B, T)
  double tokens = resp.sum().item<double>();
  double ent = tokens > 0 ? (entropy.to(torch::kFloat64) * resp).sum().item<double>() : 0.0;
  double kl_sum = 0, kl_tokens = 0;
  if (batch.per_token.count("ref_logprobs")) {
    const auto& c = self->state.opts.loss;
    auto kl = kl_estimate(batch.per_token.at("old_logprobs"), batch.per_token.at("ref_logprobs"), c.reference_policy_kl_type,
                          c.kl_input_clamp_value, c.kl_output_clamp_value);
    auto m = batch.response_mask;
    kl_sum = (kl * m).sum().item<double>();
    kl_tokens = m.sum().item<double>();
  }
  if (auto* dp = rl_trainer(self).group(); dp && dp->world_size() > 1) {  // sums over the ranks' shards
    std::vector<torch::Tensor> sums{torch::tensor({ent, tokens, kl_sum, kl_tokens}, torch::kFloat64)};
    dp->all_reduce_sum(sums, "diagnostics (entropy, kl)");
    const auto v = sums[0].contiguous();
    ent = v[0].item<double>(), tokens = v[1].item<double>(), kl_sum = v[2].item<double>(), kl_tokens = v[3].item<double>();
  }
  out["train/entropy"] = tokens > 0 ? ent / tokens : 0.0;
  out["train/kl"] = kl_sum / std::max(1.0, kl_tokens);
}

std::map<std::string, double> grpo_step(trainer_actor* self, const rollout_batch& rb) {
  auto& st = self->state;
  auto& t = rl_trainer(self);
  auto batch = make_batch(rb.prompts, rb.completions, &rb.gen_logprobs, st.opts.pad_id,
                          rb.completion_masks.empty() ? nullptr : &rb.completion_masks);
  batch.per_sequence["advantages"] = torch::tensor(rb.advantages, torch::kFloat32);
  torch::Tensor entropy;  // (B, T), from the same forward as lp_old
  batch.per_token["old_logprobs"] = t.policy_logprobs(batch, st.opts.temperature, &entropy);
  if (t.reference() != nullptr) batch.per_token["ref_logprobs"] = t.reference_logprobs(batch, st.opts.temperature);
  std::map<std::string, double> out;
  add_diagnostics(self, batch, entropy, out);
  const auto cfg = st.opts.loss;
  const double temperature = st.opts.temperature;
  auto result = t.train_step(batch, [cfg, temperature](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    pg_inputs in;
    in.lp = token_logprobs(policy, mb, temperature);
    in.lp_old = mb.extra("old_logprobs");
    in.lp_gen = mb.extra("gen_logprobs");
    if (mb.per_token.count("ref_logprobs")) in.lp_ref = mb.extra("ref_logprobs");
    in.advantages = mb.extra("advantages");
    in.mask = mb.response_mask.to(torch::kFloat32);
    return clipped_pg_loss(cfg, in, global);
  });
  for (auto& [k, v] : result.metrics) out[k] = v;
  out["train/clip_frac"] = out["train/clip_fraction_low"] + out["train/clip_fraction_high"];
  return out;
}

std::map<std::string, double> sft_step(trainer_actor* self, const sft_batch& sb) {
  auto& st = self->state;
  if (!st.sft) st.sft = std::make_unique<trainer>(st.policy, st.opts.sft, /*with_reference=*/false, group_of(self));
  auto batch = make_batch(sb.prompts, sb.targets, nullptr, st.opts.pad_id);
  auto result = st.sft->train_step(batch, [](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    return nll_loss(token_logprobs(policy, mb), mb.response_mask.to(torch::kFloat32), global.tokens);
  });
  std::map<std::string, double> out;
  for (auto& [k, v] : result.metrics) out["sft/" + k.substr(k.find('/') + 1)] = v;
  return out;
}

caf::behavior trainer_behavior(trainer_actor* self, causal_lm policy, trainer_actor_options opts) {
  convert_exceptions(self);
  self->state.policy = std::move(policy);
  self->state.opts = std::move(opts);
  return {
    [self](train_atom, const rollout_batch& rb) { return grpo_step(self, rb); },
    [self](sft_atom, const sft_batch& sb) { return sft_step(self, sb); },
    [self](weights_atom) {
      auto& st = self->state;
      // Versions count GRPO updates: SFT steps come before any rollout, and a resumed
      // run (which does not redo SFT) must number its weights as the first run did.
      return publish_weights(st.policy, st.rl ? st.rl->step() : 0, st.opts.fp8_sync);
    },
    [self](save_atom, const std::string& dir) {
      auto& t = rl_trainer(self);  // made on every rank alike: its constructor is a collective
      if (is_rank0(self)) t.save_checkpoint(dir);  // the replicas are identical
      return true;
    },
    [self](load_atom, const std::string& reference_dir, const std::string& dir) {
      // The reference is the policy as GRPO started: load it first, so that rl_trainer
      // freezes that copy, then the checkpoint's weights and optimizer state.
      // Data parallel: only rank 0 reads the files; the trainer's constructor broadcasts
      // its reference weights, sync_replicas the restored state.
      if (!self->state.rl && !reference_dir.empty() && is_rank0(self)) load_weights(self->state.policy, reference_dir);
      auto& t = rl_trainer(self);
      if (is_rank0(self)) t.load_checkpoint(dir);
      t.sync_replicas();
      return t.step();
    },
  };
}

}  // namespace

caf::actor spawn_trainer_actor(caf::actor_system& sys, causal_lm policy, trainer_actor_options opts) {
  opts.trainer.validate("trainer");
  opts.sft.validate("sft");
  opts.loss.validate();
  opts.data_parallel.validate("data_parallel");
  return sys.spawn<caf::detached>(trainer_behavior, std::move(policy), std::move(opts));
}

}  // namespace troupe
