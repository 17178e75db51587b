#include "actors/policy/trainer_actor.hpp"

#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "algorithms/data_parallel_gloo.hpp"
#include "algorithms/losses.hpp"
#include "algorithms/offline_objectives.hpp"
#include "algorithms/trainer.hpp"
#include "policies/checkpoint.hpp"
#include "weights/weight_snapshot.hpp"

namespace troupe {

namespace {

// Rows prompt + completion with the loss on the completion (where `completion_masks`,
// when given, is not 0): the token rows every objective's batch is built from
// (algorithms/offline_objectives.hpp rows_to_batch).
token_rows prompt_completion_rows(const std::vector<std::vector<std::int32_t>>& prompts,
                                  const std::vector<std::vector<std::int32_t>>& completions,
                                  const std::vector<std::vector<float>>* completion_masks = nullptr) {
  if (completions.size() != prompts.size() || (completion_masks && completion_masks->size() != prompts.size()))
    throw input_error("trainer: batch rows disagree in number");
  token_rows rows;
  for (std::size_t b = 0; b < prompts.size(); ++b) {
    const auto& p = prompts[b];
    const auto& c = completions[b];
    if (p.empty()) throw input_error("trainer: row " + std::to_string(b) + " has an empty prompt");
    std::vector<std::int32_t> ids(p);
    std::vector<std::uint8_t> loss(p.size(), 0);
    ids.insert(ids.end(), c.begin(), c.end());
    for (std::size_t j = 0; j < c.size(); ++j)
      loss.push_back(completion_masks == nullptr || (*completion_masks)[b].at(j) != 0.0f ? 1 : 0);
    rows.ids.push_back(std::move(ids));
    rows.loss_mask.push_back(std::move(loss));
  }
  return rows;
}

// The GRPO batch: prompt + completion rows, right-padded (B, T), with the generator's
// logprobs at the completion positions (B, T) and the advantages (B).
train_batch rollout_train_batch(const rollout_batch& rb, std::int64_t pad_id) {
  if (rb.gen_logprobs.size() != rb.prompts.size()) throw input_error("trainer: batch rows disagree in number");
  auto batch = rows_to_batch(
      prompt_completion_rows(rb.prompts, rb.completions, rb.completion_masks.empty() ? nullptr : &rb.completion_masks),
      pad_id);
  auto gen = torch::zeros(batch.input_ids.sizes(), torch::kFloat32);  // (B, T)
  auto gen_a = gen.accessor<float, 2>();
  for (std::size_t b = 0; b < rb.prompts.size(); ++b) {
    const auto start = static_cast<std::int64_t>(rb.prompts[b].size());
    for (std::size_t j = 0; j < rb.completions[b].size(); ++j)
      gen_a[static_cast<std::int64_t>(b)][start + static_cast<std::int64_t>(j)] = rb.gen_logprobs[b].at(j);
  }
  batch.per_token["gen_logprobs"] = gen;
  batch.per_sequence["advantages"] = torch::tensor(rb.advantages, torch::kFloat32);
  return batch;
}

struct trainer_state {
  causal_lm policy{nullptr};
  trainer_actor_options opts;
  std::unique_ptr<trainer> main;  // the objective's optimizer (+ reference), made on first use
  std::unique_ptr<trainer> sft;   // grpo: the SFT warm start's optimizer
  std::shared_ptr<data_parallel_group> group;  // data parallel: joined with the first trainer
  static inline const char* name = "troupe.trainer";
};

using trainer_self = trainer_actor::stateful_pointer<trainer_state>;

// The data-parallel group, joined on first use (blocks until every rank has joined);
// nullptr when training alone.
std::shared_ptr<data_parallel_group> group_of(trainer_self self) {
  auto& st = self->state;
  if (!st.group && st.opts.data_parallel.enabled()) st.group = join_data_parallel_group(st.opts.data_parallel);
  return st.group;
}

bool is_rank0(trainer_self self) { return self->state.opts.data_parallel.rank == 0; }

bool with_reference(const trainer_actor_options& o) {
  if (o.objective == trainer_objective::dpo) return true;
  return o.objective == trainer_objective::grpo && o.loss.reference_policy_kl_penalty != 0;
}

// The objective's trainer. Its frozen reference is the policy as it is now: for GRPO
// the policy after the SFT warm start, as in NeMo RL.
trainer& main_trainer(trainer_self self) {
  auto& st = self->state;
  if (!st.main) st.main = std::make_unique<trainer>(st.policy, st.opts.trainer, with_reference(st.opts), group_of(self));
  return *st.main;
}

// A message of another objective is the caller's mistake: bad_input naming both.
void require(trainer_self self, bool grpo, const char* message) {
  if ((self->state.opts.objective == trainer_objective::grpo) == grpo) return;
  throw input_error(std::string("trainer: ") + message +
                    (grpo ? " needs the grpo objective" : " are for the sft, dpo and distill objectives, not grpo"));
}

// Mean entropy of the policy over the response tokens (`entropy` (B, T), from the
// forward that scored lp_old: trainer::policy_logprobs) and the mean KL of lp_old to
// lp_ref, no grad.
void add_diagnostics(trainer_self self, const train_batch& batch, const torch::Tensor& entropy,
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
  if (auto* dp = main_trainer(self).group(); dp && dp->world_size() > 1) {  // sums over the ranks' shards
    std::vector<torch::Tensor> sums{torch::tensor({ent, tokens, kl_sum, kl_tokens}, torch::kFloat64)};
    dp->all_reduce_sum(sums, "diagnostics (entropy, kl)");
    const auto v = sums[0].contiguous();
    ent = v[0].item<double>(), tokens = v[1].item<double>(), kl_sum = v[2].item<double>(), kl_tokens = v[3].item<double>();
  }
  out["train/entropy"] = tokens > 0 ? ent / tokens : 0.0;
  out["train/kl"] = kl_sum / std::max(1.0, kl_tokens);
}

std::map<std::string, double> grpo_step(trainer_self self, const rollout_batch& rb) {
  require(self, true, "a rollout batch");
  auto& st = self->state;
  auto& t = main_trainer(self);
  auto batch = rollout_train_batch(rb, st.opts.pad_id);
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

// GRPO's warm start: masked NLL on the targets, with an optimizer of its own.
std::map<std::string, double> warm_start_step(trainer_self self, const sft_batch& sb) {
  require(self, true, "an SFT warm-start batch");
  auto& st = self->state;
  if (!st.sft) st.sft = std::make_unique<trainer>(st.policy, st.opts.sft, /*with_reference=*/false, group_of(self));
  return sft_step(*st.sft, prompt_completion_rows(sb.prompts, sb.targets), st.opts.pad_id);
}

// The offline objectives: one optimizer step on `rows` (train), or their loss without
// gradients (eval).
std::map<std::string, double> offline_rows(trainer_self self, const token_rows& rows, bool train) {
  require(self, false, "token rows");
  auto& s = self->state;
  auto& t = main_trainer(self);
  const auto pad = s.opts.pad_id;
  if (s.opts.objective == trainer_objective::dpo)
    return train ? dpo_step(t, s.opts.dpo, rows, pad) : dpo_eval(t, s.opts.dpo, rows, pad);
  if (s.opts.objective == trainer_objective::distill)
    return train ? distill_step(t, s.opts.teacher, s.opts.distill, rows, pad)
                 : distill_eval(t, s.opts.teacher, s.opts.distill, rows, pad);
  if (!train) {
    const auto n = sft_eval(t, rows, pad);
    return std::map<std::string, double>{{"nll_sum", n.sum}, {"tokens", n.tokens}};
  }
  auto out = sft_step(t, rows, pad);
  out.erase("sft/nll");  // the same number as sft/loss here
  return out;
}

// Resume: the reference first (the weights at reference_dir), then the checkpoint.
std::int64_t restore(trainer_self self, const std::string& reference_dir, const std::string& dir) {
  auto& st = self->state;
  // Data parallel: only rank 0 reads the files; the trainer's constructor broadcasts
  // its reference weights, sync_replicas the restored state.
  if (!reference_dir.empty() && is_rank0(self)) {
    if (!st.main) {
      load_weights(st.policy, reference_dir);  // the trainer made next freezes this copy
    } else {
      if (st.main->reference() == nullptr)
        throw std::logic_error("trainer: a reference to restore from " + reference_dir + ", but no reference");
      load_weights(*st.main->reference(), reference_dir);
    }
  }
  auto& t = main_trainer(self);  // made on every rank alike: its constructor is a collective
  if (is_rank0(self)) t.load_checkpoint(dir);
  t.sync_replicas();
  return t.step();
}

trainer_actor::behavior_type trainer_behavior(trainer_self self, causal_lm policy, trainer_actor_options opts) {
  convert_exceptions(self);
  self->state.policy = std::move(policy);
  self->state.opts = std::move(opts);
  return {
    [self](train_atom, const rollout_batch& rb) { return grpo_step(self, rb); },
    [self](sft_atom, const sft_batch& sb) { return warm_start_step(self, sb); },
    [self](train_atom, const token_rows& rows) { return offline_rows(self, rows, /*train=*/true); },
    [self](eval_atom, const token_rows& rows) { return offline_rows(self, rows, /*train=*/false); },
    [self](weights_atom) {
      auto& st = self->state;
      // Versions count the objective's updates: GRPO's SFT warm start comes before any
      // rollout, and a resumed run (which does not redo it) must number its weights as
      // the first run did.
      return publish_weights(st.policy, st.main ? st.main->step() : 0, st.opts.fp8_sync);
    },
    [self](save_atom, const std::string& dir) {
      auto& t = main_trainer(self);  // made on every rank alike: its constructor is a collective
      if (is_rank0(self)) t.save_checkpoint(dir);  // the replicas are identical
      return true;
    },
    [self](load_atom, const std::string& reference_dir, const std::string& dir) {
      return restore(self, reference_dir, dir);
    },
  };
}

}  // namespace

trainer_actor spawn_trainer_actor(caf::actor_system& sys, causal_lm policy, trainer_actor_options opts) {
  opts.trainer.validate("trainer");
  opts.data_parallel.validate("data_parallel");
  if (opts.objective == trainer_objective::grpo) {
    opts.sft.validate("sft");
    opts.loss.validate();
  }
  if (opts.objective == trainer_objective::dpo) {
    opts.dpo.validate();
    if (opts.trainer.microbatch_size % 2 != 0)
      throw input_error("trainer: dpo needs an even microbatch_size (rows), so microbatches hold whole pairs");
  }
  if (opts.objective == trainer_objective::distill) {
    if (!opts.teacher) throw std::logic_error("trainer: distill needs a teacher");
    opts.distill.validate(opts.teacher->config().vocab_size);
  }
  return sys.spawn<caf::detached>(trainer_behavior, std::move(policy), std::move(opts));
}

}  // namespace troupe
