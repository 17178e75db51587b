#include "algorithms/offline_objectives.hpp"

namespace troupe {

namespace {

using torch::indexing::None;
using torch::indexing::Slice;

// The metrics of one train_step, renamed from train/<name> to <prefix>/<name>.
std::map<std::string, double> renamed(const std::map<std::string, double>& metrics, const std::string& prefix) {
  std::map<std::string, double> out;
  for (const auto& [k, v] : metrics) out[prefix + "/" + k.substr(k.find('/') + 1)] = v;
  return out;
}

// Even rows (chosen) and odd rows (rejected) of a (2P, T) tensor.
torch::Tensor chosen_rows(const torch::Tensor& t) { return t.index({Slice(0, None, 2)}); }
torch::Tensor rejected_rows(const torch::Tensor& t) { return t.index({Slice(1, None, 2)}); }

// The DPO loss of pair rows, plus the policy's summed response logprobs per side.
loss_result pair_loss(const dpo_config& cfg, const torch::Tensor& lp, const torch::Tensor& lp_ref,
                      const torch::Tensor& mask, double global_pairs) {
  if (lp.size(0) % 2 != 0) throw std::logic_error("dpo: a microbatch holds half a pair");
  dpo_inputs in;
  in.lp_chosen = chosen_rows(lp);
  in.lp_ref_chosen = chosen_rows(lp_ref);
  in.mask_chosen = chosen_rows(mask);
  in.lp_rejected = rejected_rows(lp);
  in.lp_ref_rejected = rejected_rows(lp_ref);
  in.mask_rejected = rejected_rows(mask);
  auto out = dpo_loss(cfg, in, global_pairs);
  torch::NoGradGuard no_grad;
  const double pairs = static_cast<double>(in.mask_chosen.size(0));
  out.metrics.add_mean("logps_chosen", (in.lp_chosen * in.mask_chosen).sum().item<double>(), pairs);
  out.metrics.add_mean("logps_rejected", (in.lp_rejected * in.mask_rejected).sum().item<double>(), pairs);
  // Whether the policy itself ranks the pair right, whatever the reference thinks: 0.5
  // or more already at the start, unlike accuracy, which is 0 while policy = reference.
  auto sum_c = (in.lp_chosen * in.mask_chosen).sum(1), sum_r = (in.lp_rejected * in.mask_rejected).sum(1);
  out.metrics.add_mean("logps_accuracy", (sum_c > sum_r).sum().item<double>(), pairs);
  return out;
}

// The distillation loss of a microbatch that carries the teacher's top-k in per_token.
loss_result distill_loss(causal_lm& policy, const train_batch& mb, const distillation_config& cfg,
                         double global_tokens) {
  auto logits = policy->forward(mb.input_ids, mb.attention_mask);  // (B, T, V)
  const auto T = logits.size(1);
  // Position t of the loss describes token t, which the logits at t - 1 predict.
  auto aligned = torch::cat({torch::zeros_like(logits.narrow(1, 0, 1)), logits.narrow(1, 0, T - 1)}, 1);  // (B, T, V)
  distillation_inputs in;
  in.student_logits = aligned.to(torch::kFloat32);
  in.teacher_topk_logits = mb.extra("teacher_topk_logprobs").to(torch::kFloat32);
  in.teacher_topk_indices = mb.extra("teacher_topk_indices");
  in.mask = mb.response_mask.to(torch::kFloat32);
  return distillation_loss(cfg, in, global_tokens);
}

// Rows with the teacher's top-k at every trained position.
train_batch teacher_scored(trainer& t, causal_lm& teacher, const distillation_config& cfg, const token_rows& rows,
                           std::int64_t pad_id) {
  auto batch = rows_to_batch(rows, pad_id);
  auto top = teacher_topk(teacher, batch, cfg.topk_logits_k, t.config().microbatch_size);
  batch.per_token["teacher_topk_logprobs"] = top.values;
  batch.per_token["teacher_topk_indices"] = top.indices;
  return batch;
}

}  // namespace

train_batch rows_to_batch(const token_rows& rows, std::int64_t pad_id) {
  const auto B = static_cast<std::int64_t>(rows.ids.size());
  if (B == 0) throw input_error("token rows: empty batch");
  if (rows.loss_mask.size() != rows.ids.size() || (rows.packed() && rows.segments.size() != rows.ids.size()))
    throw input_error("token rows: ids, loss_mask and segments disagree in rows");
  std::int64_t T = 0;
  for (const auto& r : rows.ids) T = std::max<std::int64_t>(T, static_cast<std::int64_t>(r.size()));
  auto ids = torch::full({B, T}, pad_id, torch::kInt64);
  auto attn = torch::zeros({B, T}, torch::kInt64);
  auto resp = torch::zeros({B, T}, torch::kFloat32);
  auto seg = torch::zeros({B, T}, torch::kInt64);
  auto ids_a = ids.accessor<std::int64_t, 2>();
  auto attn_a = attn.accessor<std::int64_t, 2>();
  auto resp_a = resp.accessor<float, 2>();
  auto seg_a = seg.accessor<std::int64_t, 2>();
  for (std::int64_t b = 0; b < B; ++b) {
    const auto i = static_cast<std::size_t>(b);
    const auto& row = rows.ids[i];
    if (row.empty()) throw input_error("token rows: row " + std::to_string(b) + " is empty");
    if (rows.loss_mask[i].size() != row.size() || (rows.packed() && rows.segments[i].size() != row.size()))
      throw input_error("token rows: row " + std::to_string(b) + " has masks of another length than its ids");
    for (std::size_t t = 0; t < row.size(); ++t) {
      const auto s = static_cast<std::int64_t>(t);
      ids_a[b][s] = row[t];
      attn_a[b][s] = 1;
      resp_a[b][s] = rows.loss_mask[i][t] ? 1.0f : 0.0f;
      if (rows.packed()) seg_a[b][s] = rows.segments[i][t];
    }
  }
  train_batch batch;
  batch.input_ids = ids;
  batch.attention_mask = attn;
  batch.response_mask = resp;
  if (rows.packed()) batch.per_token["segment_ids"] = seg;
  batch.validate();
  return batch;
}

std::map<std::string, double> sft_step(trainer& t, const token_rows& rows, std::int64_t pad_id) {
  auto batch = rows_to_batch(rows, pad_id);
  auto result = t.train_step(batch, [](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    return nll_loss(token_logprobs(policy, mb), mb.response_mask.to(torch::kFloat32), global.tokens);
  });
  return renamed(result.metrics, "sft");
}

nll_sum sft_eval(trainer& t, const token_rows& rows, std::int64_t pad_id) {
  auto batch = rows_to_batch(rows, pad_id);
  auto lp = t.policy_logprobs(batch).to(torch::kFloat64);  // (B, T), 0 off the mask
  nll_sum out;
  out.sum = -(lp * batch.response_mask.to(torch::kFloat64)).sum().item<double>();
  out.tokens = batch.response_mask.sum().item<double>();
  return out;
}

std::map<std::string, double> dpo_step(trainer& t, const dpo_config& cfg, const token_rows& pairs,
                                       std::int64_t pad_id) {
  if (t.reference() == nullptr) throw std::logic_error("dpo_step: the trainer has no reference model");
  if (t.config().microbatch_size % 2 != 0)
    throw input_error("dpo: the trainer's microbatch_size must be even so that a microbatch holds whole pairs");
  auto batch = rows_to_batch(pairs, pad_id);
  if (batch.size() % 2 != 0) throw input_error("dpo: pair rows must come in (chosen, rejected) twos");
  batch.per_token["ref_logprobs"] = t.reference_logprobs(batch);
  // Pairs of the global batch (all data-parallel ranks): global.rows / 2.
  auto result = t.train_step(batch, [cfg](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    return pair_loss(cfg, token_logprobs(policy, mb), mb.extra("ref_logprobs"), mb.response_mask.to(torch::kFloat32),
                     global.rows / 2);
  });
  return renamed(result.metrics, "dpo");
}

std::map<std::string, double> dpo_eval(trainer& t, const dpo_config& cfg, const token_rows& pairs,
                                       std::int64_t pad_id) {
  if (t.reference() == nullptr) throw std::logic_error("dpo_eval: the trainer has no reference model");
  auto batch = rows_to_batch(pairs, pad_id);
  if (batch.size() % 2 != 0) throw input_error("dpo: pair rows must come in (chosen, rejected) twos");
  torch::NoGradGuard no_grad;
  auto out = pair_loss(cfg, t.policy_logprobs(batch), t.reference_logprobs(batch),
                       batch.response_mask.to(torch::kFloat32), static_cast<double>(batch.size() / 2));
  std::map<std::string, double> m;
  for (const auto& [k, v] : out.metrics.finalize()) m["dpo/eval_" + k] = v;
  return m;
}

std::map<std::string, double> distill_step(trainer& t, causal_lm& teacher, const distillation_config& cfg,
                                           const token_rows& rows, std::int64_t pad_id) {
  auto batch = teacher_scored(t, teacher, cfg, rows, pad_id);
  auto result = t.train_step(batch, [cfg](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    return distill_loss(policy, mb, cfg, global.tokens);
  });
  return renamed(result.metrics, "distill");
}

std::map<std::string, double> distill_eval(trainer& t, causal_lm& teacher, const distillation_config& cfg,
                                           const token_rows& rows, std::int64_t pad_id) {
  auto batch = teacher_scored(t, teacher, cfg, rows, pad_id);
  torch::NoGradGuard no_grad;
  const auto global = global_totals(batch);
  loss_metrics merged;
  const auto mb = t.config().microbatch_size;
  for (std::int64_t b = 0; b < batch.size(); b += mb) {
    auto part = batch.slice(b, std::min(batch.size(), b + mb));
    part.input_ids = part.input_ids.to(t.policy()->device());
    part.attention_mask = part.attention_mask.to(t.policy()->device());
    for (auto& [k, v] : part.per_token) v = v.to(t.policy()->device());
    part.response_mask = part.response_mask.to(t.policy()->device());
    merged.add(distill_loss(t.policy(), part, cfg, global.tokens).metrics);
  }
  std::map<std::string, double> out;
  for (const auto& [k, v] : merged.finalize()) out["distill/eval_" + k] = v;
  return out;
}

}  // namespace troupe
