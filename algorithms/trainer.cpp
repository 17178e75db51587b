#include "algorithms/trainer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <limits>
#include <mutex>

#include "core/run_dir.hpp"
#include "policies/checkpoint.hpp"
#include "algorithms/fused_adamw.hpp"

namespace troupe {

namespace fs = std::filesystem;
using torch::indexing::Slice;

namespace {

constexpr const char* state_file_name = "trainer_state.pt";
constexpr std::int64_t state_format = 1;
constexpr double pi = 3.14159265358979323846;

std::string fmt(double v) { return format_double(v); }

// Moves every tensor of `b` to `device` (no copy when already there).
train_batch to_device(const train_batch& b, const torch::Device& device) {
  train_batch out;
  out.input_ids = b.input_ids.to(device);
  out.attention_mask = b.attention_mask.to(device);
  out.response_mask = b.response_mask.to(device);
  for (const auto& [k, v] : b.per_sequence) out.per_sequence[k] = v.to(device);
  for (const auto& [k, v] : b.per_token) out.per_token[k] = v.to(device);
  return out;
}

// The microbatch of a span (right padding makes the cut-off columns padding only).
train_batch microbatch_of(const microbatch_plan& plan, const microbatch_span& span) {
  return plan.ordered.slice(span.begin, span.end, span.length);
}

torch::Tensor generator_state(at::Generator& g) {
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_generator_state(at::Generator& g, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

// The policy's parameters and buffers, in a fixed order: what makes two replicas equal.
std::vector<torch::Tensor> module_tensors(causal_lm& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m->parameters()) out.push_back(p.detach());
  for (auto& b : m->buffers()) out.push_back(b.detach());
  return out;
}

}  // namespace

// --- config -------------------------------------------------------------------------

void trainer_section::validate(const std::string& path) const {
  auto key = [&](const char* k) { return path + "." + k; };
  if (lr_schedule == "constant" && warmup_steps > 0)
    throw input_error(key("warmup_steps") + " = " + std::to_string(warmup_steps) + " has no effect with " +
                      key("lr_schedule") + " = constant: set lr_schedule to linear_warmup or cosine, or warmup_steps to 0");
  if (lr_schedule == "cosine") {
    if (total_steps == 0)
      throw input_error(key("lr_schedule") + " = cosine needs " + key("total_steps") +
                        ": set it to the number of optimizer steps of the run");
    if (warmup_steps >= total_steps)
      throw input_error(key("warmup_steps") + " (" + std::to_string(warmup_steps) + ") is not below " +
                        key("total_steps") + " (" + std::to_string(total_steps) +
                        "), so the cosine schedule would never decay: lower warmup_steps or raise total_steps");
    if (min_lr > lr)
      throw input_error(key("min_lr") + " (" + fmt(min_lr) + ") is above " + key("lr") + " (" + fmt(lr) +
                        "); cosine decays from lr down to min_lr: set min_lr <= lr");
  }
  if (total_steps > 0 && warmup_steps > total_steps)
    throw input_error(key("warmup_steps") + " (" + std::to_string(warmup_steps) + ") exceeds " + key("total_steps") +
                      " (" + std::to_string(total_steps) + "): lower warmup_steps or raise total_steps");
}

double scheduled_lr(const trainer_section& cfg, std::int64_t step) {
  if (cfg.lr_schedule == "constant") return cfg.lr;
  const auto w = cfg.warmup_steps;
  if (step < w) return cfg.lr * static_cast<double>(step + 1) / static_cast<double>(w);
  if (cfg.lr_schedule == "linear_warmup") return cfg.lr;
  if (cfg.lr_schedule == "cosine") {
    const double p = std::min(1.0, static_cast<double>(step - w) / static_cast<double>(std::max<std::int64_t>(cfg.total_steps - w, 1)));
    return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + std::cos(pi * p));
  }
  throw input_error("trainer.lr_schedule: unknown schedule '" + cfg.lr_schedule + "'");
}

// --- batches --------------------------------------------------------------------------

train_batch train_batch::slice(std::int64_t begin, std::int64_t end, std::int64_t len) const {
  const auto n = end - begin;
  const auto L = len < 0 ? length() : len;
  train_batch out;
  out.input_ids = input_ids.narrow(0, begin, n).narrow(1, 0, L);
  out.attention_mask = attention_mask.narrow(0, begin, n).narrow(1, 0, L);
  out.response_mask = response_mask.narrow(0, begin, n).narrow(1, 0, L);
  for (const auto& [k, v] : per_sequence) out.per_sequence[k] = v.narrow(0, begin, n);
  for (const auto& [k, v] : per_token) out.per_token[k] = v.narrow(0, begin, n).narrow(1, 0, L);
  return out;
}

train_batch train_batch::rows(const torch::Tensor& index) const {
  train_batch out;
  out.input_ids = input_ids.index_select(0, index);
  out.attention_mask = attention_mask.index_select(0, index);
  out.response_mask = response_mask.index_select(0, index);
  for (const auto& [k, v] : per_sequence) out.per_sequence[k] = v.index_select(0, index);
  for (const auto& [k, v] : per_token) out.per_token[k] = v.index_select(0, index);
  return out;
}

std::int64_t microbatch_plan::computed_tokens() const {
  std::int64_t n = 0;
  for (const auto& s : spans) n += (s.end - s.begin) * s.length;
  return n;
}

microbatch_plan plan_microbatches(const train_batch& batch, std::int64_t microbatch_size,
                                  std::int64_t microbatch_tokens) {
  if (microbatch_size < 1 || microbatch_tokens < 0)
    throw std::logic_error("plan_microbatches: microbatch_size must be >= 1 and microbatch_tokens >= 0");
  const auto B = batch.size();
  // Row lengths (B): right padding makes the count of real tokens the length.
  auto lengths = batch.attention_mask.ne(0).sum(1).clamp_min(1).to(torch::kInt64).contiguous();
  microbatch_plan plan;
  if (microbatch_tokens == 0) {
    plan.ordered = batch;
    const auto* len = lengths.data_ptr<std::int64_t>();
    for (std::int64_t begin = 0; begin < B; begin += microbatch_size) {
      const auto end = std::min(B, begin + microbatch_size);
      plan.spans.push_back({begin, end, *std::max_element(len + begin, len + end)});
    }
    return plan;
  }
  // Longest first, stable: deterministic, and each span's first row is its longest.
  plan.order = std::get<1>(lengths.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();
  plan.ordered = batch.rows(plan.order);
  auto sorted = lengths.index_select(0, plan.order).contiguous();
  const auto* len = sorted.data_ptr<std::int64_t>();
  for (std::int64_t begin = 0; begin < B;) {
    const auto L = len[begin];
    const auto fit = std::max<std::int64_t>(microbatch_tokens / L, 1);  // rows of length <= L within the budget
    const auto end = std::min(B, begin + fit);
    plan.spans.push_back({begin, end, L});
    begin = end;
  }
  return plan;
}

const torch::Tensor& train_batch::extra(const std::string& name) const {
  if (auto it = per_sequence.find(name); it != per_sequence.end()) return it->second;
  if (auto it = per_token.find(name); it != per_token.end()) return it->second;
  std::string present;
  for (const auto& [k, v] : per_sequence) present += (present.empty() ? "" : ", ") + k;
  for (const auto& [k, v] : per_token) present += (present.empty() ? "" : ", ") + k;
  throw input_error("train batch: no tensor named '" + name + "' (it has: " + (present.empty() ? "none" : present) + ")");
}

void train_batch::validate() const {
  auto fail = [](const std::string& what) { throw input_error("train batch: " + what); };
  if (!input_ids.defined() || input_ids.dim() != 2) fail("input_ids must be a (B, T) tensor");
  if (input_ids.scalar_type() != torch::kInt64) fail("input_ids must be int64");
  const auto B = size(), T = length();
  if (B == 0 || T == 0) fail("empty batch");
  auto check_bt = [&](const torch::Tensor& t, const std::string& name) {
    if (!t.defined() || t.dim() != 2 || t.size(0) != B || t.size(1) != T)
      fail(name + " must have the shape of input_ids (" + std::to_string(B) + ", " + std::to_string(T) + ")");
  };
  check_bt(attention_mask, "attention_mask");
  check_bt(response_mask, "response_mask");
  auto attn = attention_mask.ne(0).cpu();  // (B, T)
  auto resp = response_mask.ne(0).cpu();   // (B, T)
  if (T > 1 && attn.narrow(1, 1, T - 1).gt(attn.narrow(1, 0, T - 1)).any().item<bool>())
    fail("attention_mask is not right-padded (a real token follows padding)");
  if (resp.logical_and(attn.logical_not()).any().item<bool>()) fail("response_mask marks a padding position");
  if (resp.select(1, 0).any().item<bool>()) fail("response_mask marks position 0, which no position predicts");
  for (const auto& [k, v] : per_sequence)
    if (!v.defined() || v.dim() < 1 || v.size(0) != B)
      fail("per-sequence tensor '" + k + "' must have " + std::to_string(B) + " rows");
  for (const auto& [k, v] : per_token)
    if (!v.defined() || v.dim() < 2 || v.size(0) != B || v.size(1) != T)
      fail("per-token tensor '" + k + "' must start with (" + std::to_string(B) + ", " + std::to_string(T) + ")");
}

batch_totals global_totals(const train_batch& batch) {
  auto resp = batch.response_mask.to(torch::kFloat64);  // (B, T)
  batch_totals n;
  n.tokens = resp.sum().item<double>();
  n.sequences = resp.sum(1).gt(0).sum().item<double>();
  n.rows = static_cast<double>(batch.size());
  return n;
}

// --- logprobs -------------------------------------------------------------------------

torch::Tensor token_logprobs(causal_lm& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                             const torch::Tensor& where, double temperature, const torch::Tensor& segment_ids,
                             torch::Tensor* entropy) {
  if (!(temperature > 0)) throw input_error("token_logprobs: temperature must be > 0");
  const auto device = model->device();
  const auto B = input_ids.size(0), T = input_ids.size(1);
  const auto out_dtype = model->dtype() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto ids = input_ids.to(device);
  auto target = where.to(device).ne(0);  // (B, T): positions scored
  target.select(1, 0).fill_(false);      // no position predicts token 0
  auto out = torch::zeros({B, T}, torch::TensorOptions().dtype(out_dtype).device(device));
  if (entropy != nullptr) *entropy = torch::zeros_like(out);
  if (T < 2) return out;
  auto hidden = segment_ids.defined() ? model->hidden_states(ids, attention_mask.to(device), segment_ids.to(device))
                                      : model->hidden_states(ids, attention_mask.to(device));  // (B, T, H)
  // Position t-1 predicts token t: the hidden states of the positions before targets.
  auto predictor = torch::zeros_like(target);
  predictor.narrow(1, 0, T - 1).copy_(target.narrow(1, 1, T - 1));
  auto h = hidden.index({predictor});                                   // (N, H), row-major (b, t)
  auto logits = model->logits(h).to(out_dtype);                         // (N, V)
  if (temperature != 1.0) logits = logits / temperature;
  auto lp = torch::log_softmax(logits, -1);                             // (N, V)
  auto picked = lp.gather(1, ids.index({target}).unsqueeze(1)).squeeze(1);  // (N)
  if (entropy != nullptr) {
    torch::NoGradGuard no_grad;  // a diagnostic: never part of the loss
    auto l = lp.detach();
    entropy->index_put_({target}, -(l.exp() * l).sum(1));  // (N)
  }
  return out.index_put({target}, picked);
}

torch::Tensor token_logprobs(causal_lm& model, const train_batch& batch, double temperature) {
  auto seg = batch.per_token.find("segment_ids");
  return token_logprobs(model, batch.input_ids, batch.attention_mask, batch.response_mask, temperature,
                        seg == batch.per_token.end() ? torch::Tensor() : seg->second);
}

topk_logprobs teacher_topk(causal_lm& teacher, const train_batch& batch, std::int64_t k, std::int64_t microbatch_size,
                           double temperature) {
  batch.validate();
  if (k < 1 || k > teacher->config().vocab_size)
    throw input_error("teacher_topk: k = " + std::to_string(k) + " outside [1, vocab_size]");
  if (!(temperature > 0)) throw input_error("teacher_topk: temperature must be > 0");
  torch::NoGradGuard no_grad;
  const auto B = batch.size(), T = batch.length();
  const auto device = teacher->device();
  const auto dtype = teacher->dtype() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  topk_logprobs out;
  out.values = torch::zeros({B, T, k}, dtype);
  out.indices = torch::zeros({B, T, k}, torch::kInt64);
  const auto plan = plan_microbatches(batch, microbatch_size > 0 ? microbatch_size : std::max<std::int64_t>(B, 1), 0);
  for (const auto& span : plan.spans) {
    const auto begin = span.begin, end = span.end;
    auto mb = to_device(microbatch_of(plan, span), device);
    const auto L = mb.length();
    if (L < 2) continue;
    auto target = mb.response_mask.ne(0);  // (m, L)
    auto predictor = torch::zeros_like(target);
    predictor.narrow(1, 0, L - 1).copy_(target.narrow(1, 1, L - 1));
    auto hidden = teacher->hidden_states(mb.input_ids, mb.attention_mask);             // (m, L, H)
    auto logits = teacher->logits(hidden.index({predictor})).to(dtype) / temperature;  // (N, V)
    auto top = torch::log_softmax(logits, -1).topk(k, -1);                             // (N, k) each
    auto rows = target.cpu();
    out.values.narrow(0, begin, end - begin).narrow(1, 0, L).index_put_({rows}, std::get<0>(top).cpu());
    out.indices.narrow(0, begin, end - begin).narrow(1, 0, L).index_put_({rows}, std::get<1>(top).cpu());
  }
  return out;
}

// --- the trainer ----------------------------------------------------------------------

causal_lm frozen_copy(causal_lm& model) {
  causal_lm copy(model->config());
  copy->to(model->device(), model->dtype());
  torch::NoGradGuard no_grad;
  auto src_params = model->named_parameters();
  for (auto& p : copy->named_parameters()) p.value().copy_(src_params[p.key()]);
  auto src_buffers = model->named_buffers();
  for (auto& b : copy->named_buffers()) b.value().copy_(src_buffers[b.key()]);
  for (auto& p : copy->parameters()) p.set_requires_grad(false);
  copy->eval();
  return copy;
}

trainer::trainer(causal_lm policy, trainer_section cfg, bool with_reference,
                 std::shared_ptr<data_parallel_group> group)
    : cfg_(std::move(cfg)), policy_(std::move(policy)),
      generator_(at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(cfg_.seed))),
      group_(std::move(group)) {
  cfg_.validate();
  if (data_parallel()) {
    // Rank 0's weights everywhere before the reference is copied from them.
    torch::NoGradGuard no_grad;
    auto tensors = module_tensors(policy_);
    group_->broadcast(tensors, "initial policy weights");
  }
  if (with_reference) reference_ = frozen_copy(policy_);
  for (auto& p : policy_->parameters())
    if (p.requires_grad()) params_.push_back(p);
  optimizer_ = std::make_unique<torch::optim::AdamW>(params_, torch::optim::AdamWOptions(cfg_.lr));
  apply_optimizer_options();
  policy_->train();
}

void trainer::apply_optimizer_options() {
  for (auto& group : optimizer_->param_groups()) {
    auto& o = static_cast<torch::optim::AdamWOptions&>(group.options());
    o.weight_decay(cfg_.weight_decay).betas({cfg_.betas[0], cfg_.betas[1]}).eps(cfg_.eps).amsgrad(false);
  }
}

batch_totals trainer::global_normalizers(const train_batch& batch) {
  auto norms = global_totals(batch);
  if (data_parallel()) {
    std::vector<torch::Tensor> t{torch::tensor({norms.tokens, norms.sequences, norms.rows}, torch::kFloat64)};
    group_->all_reduce_sum(t, "loss normalizers");
    const auto v = t[0].contiguous();
    norms.tokens = v[0].item<double>();
    norms.sequences = v[1].item<double>();
    norms.rows = v[2].item<double>();
  }
  if (norms.tokens == 0) throw input_error("train batch: no response tokens to train (response_mask is all 0)");
  return norms;
}

trainer::accumulated trainer::accumulate_gradients(const train_batch& batch, const loss_fn& loss,
                                                   const batch_totals& norms) {
  accumulated acc;
  const auto device = policy_->device();
  const auto plan = plan_microbatches(batch, cfg_.microbatch_size, cfg_.microbatch_tokens);
  acc.computed_tokens = static_cast<double>(plan.computed_tokens());
  acc.real_tokens = batch.attention_mask.ne(0).sum().item<double>();
  for (const auto& span : plan.spans) {
    auto mb = to_device(microbatch_of(plan, span), device);
    auto out = loss(policy_, mb, norms);
    if (!out.loss.defined() || out.loss.numel() != 1)
      throw std::logic_error("train_step: the loss function returned no scalar loss");
    const double v = out.loss.item<double>();
    ++acc.microbatches;
    if (!std::isfinite(v)) {
      acc.finite = false;  // the rest of the batch cannot repair it
      break;
    }
    if (out.loss.requires_grad()) out.loss.backward();
    acc.loss_sum += v;
    acc.metrics.add(out.metrics);
  }
  return acc;
}

void trainer::reduce_gradients(accumulated& acc) {
  if (!data_parallel()) return;
  // One bucketed all-reduce: every gradient (a missing one as zeros), whether each
  // parameter had one on some rank, the NaN/inf flag, the loss sum and microbatches.
  torch::NoGradGuard no_grad;
  const auto P = static_cast<std::int64_t>(params_.size());
  std::vector<double> flags_in(static_cast<std::size_t>(P + 5), 0.0);  // P had-grad flags, then five scalars
  std::vector<torch::Tensor> sums;
  for (std::int64_t i = 0; i < P; ++i) {
    auto& p = params_[static_cast<std::size_t>(i)];
    if (p.grad().defined()) {
      flags_in[static_cast<std::size_t>(i)] = 1.0;
    } else {
      p.mutable_grad() = torch::zeros_like(p);
    }
    sums.push_back(p.grad());
  }
  flags_in[static_cast<std::size_t>(P)] = acc.finite ? 0.0 : 1.0;
  flags_in[static_cast<std::size_t>(P + 1)] = acc.finite ? acc.loss_sum : 0.0;
  flags_in[static_cast<std::size_t>(P + 2)] = static_cast<double>(acc.microbatches);
  flags_in[static_cast<std::size_t>(P + 3)] = acc.computed_tokens;
  flags_in[static_cast<std::size_t>(P + 4)] = acc.real_tokens;
  sums.push_back(torch::tensor(flags_in, torch::kFloat64));
  group_->all_reduce_sum(sums, "gradients");
  const auto flags = sums.back().contiguous();
  const auto* f = flags.data_ptr<double>();
  // A parameter no rank had a gradient for stays without one, as in a single process
  // (AdamW then leaves it alone).
  for (std::int64_t i = 0; i < P; ++i)
    if (f[i] == 0) params_[static_cast<std::size_t>(i)].mutable_grad() = torch::Tensor();
  acc.finite = f[P] == 0;
  acc.loss_sum = f[P + 1];
  acc.microbatches = static_cast<std::int64_t>(f[P + 2]);
  acc.computed_tokens = f[P + 3];
  acc.real_tokens = f[P + 4];
  loss_metrics merged;
  for (const auto& text : group_->all_gather(acc.metrics.encode(), "loss metrics")) merged.add(loss_metrics::decode(text));
  acc.metrics = merged;
}

std::optional<double> trainer::clip_gradients() {
  std::vector<torch::Tensor> norms_per_param;
  for (auto& p : params_)
    if (p.grad().defined()) norms_per_param.push_back(p.grad().detach().norm(2).to(torch::kFloat64));
  double grad_norm = norms_per_param.empty() ? 0.0 : torch::stack(norms_per_param).norm(2).item<double>();
  if (data_parallel()) {
    // The gradients are the same bytes everywhere; rank 0's norm makes the clip and
    // skip decisions the same by construction.
    std::vector<torch::Tensor> g{torch::tensor({grad_norm}, torch::kFloat64)};
    group_->broadcast(g, "grad norm");
    grad_norm = g[0].item<double>();
  }
  if (!std::isfinite(grad_norm)) return std::nullopt;
  if (cfg_.max_grad_norm > 0 && grad_norm > cfg_.max_grad_norm) {
    const double coef = cfg_.max_grad_norm / (grad_norm + 1e-6);
    torch::NoGradGuard no_grad;
    for (auto& p : params_)
      if (p.grad().defined()) p.grad().mul_(coef);
  }
  return grad_norm;
}

void trainer::apply_or_skip(bool finite) {
  ++step_;
  if (finite) {
    if (fused_adamw_supported(*optimizer_)) fused_adamw_step(*optimizer_);
    else optimizer_->step();
    consecutive_nonfinite_ = 0;
  } else {
    optimizer_->zero_grad(/*set_to_none=*/true);
    ++skipped_steps_;
    ++consecutive_nonfinite_;
  }
}

train_step_result trainer::train_step(const train_batch& batch, const loss_fn& loss) {
  batch.validate();
  const auto norms = global_normalizers(batch);
  const double lr = scheduled_lr(cfg_, step_);
  for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

  optimizer_->zero_grad(/*set_to_none=*/true);
  auto acc = accumulate_gradients(batch, loss, norms);
  reduce_gradients(acc);
  train_step_result r;
  for (const auto& [k, x] : acc.metrics.finalize()) r.metrics["train/" + k] = x;
  bool finite = acc.finite;
  if (finite) {
    const auto grad_norm = clip_gradients();
    finite = grad_norm.has_value();
    if (finite) r.metrics["train/grad_norm"] = *grad_norm;
  }
  if (finite) r.metrics["train/loss"] = acc.loss_sum;
  apply_or_skip(finite);
  r.step = step_;
  r.skipped = !finite;
  r.metrics["train/lr"] = lr;
  r.metrics["train/tokens"] = norms.tokens;
  r.metrics["train/sequences"] = norms.sequences;
  r.metrics["train/microbatches"] = static_cast<double>(acc.microbatches);
  r.metrics["train/padding_fraction"] = acc.computed_tokens > 0 ? 1.0 - acc.real_tokens / acc.computed_tokens : 0.0;
  r.metrics["train/skipped"] = r.skipped ? 1.0 : 0.0;
  r.metrics["train/skipped_steps"] = static_cast<double>(skipped_steps_);
  if (consecutive_nonfinite_ >= cfg_.max_consecutive_nonfinite)
    throw training_diverged("train step " + std::to_string(step_) + ": the loss or the gradients were not finite (NaN/inf) in " +
                            std::to_string(consecutive_nonfinite_) + " consecutive steps (trainer.max_consecutive_nonfinite = " +
                            std::to_string(cfg_.max_consecutive_nonfinite) +
                            "); the weights are those of the last finite step. Lower trainer.lr, check rewards and "
                            "advantages for NaN, or raise trainer.max_consecutive_nonfinite");
  return r;
}

torch::Tensor trainer::logprobs_microbatched(causal_lm& model, const train_batch& batch, double temperature,
                                            torch::Tensor* entropy) {
  batch.validate();
  torch::NoGradGuard no_grad;
  const auto B = batch.size(), T = batch.length();
  const auto dtype = model->dtype() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto out = torch::zeros({B, T}, dtype);  // (B, T)
  if (entropy != nullptr) *entropy = torch::zeros({B, T}, dtype);
  // Filled in the plan's row order, then put back in the batch's.
  const auto plan = plan_microbatches(batch, cfg_.microbatch_size, cfg_.microbatch_tokens);
  for (const auto& span : plan.spans) {
    const auto begin = span.begin, end = span.end;
    auto mb = microbatch_of(plan, span);
    auto seg = mb.per_token.find("segment_ids");
    torch::Tensor ent;
    auto lp = token_logprobs(model, mb.input_ids, mb.attention_mask, mb.response_mask, temperature,
                             seg == mb.per_token.end() ? torch::Tensor() : seg->second, entropy ? &ent : nullptr);
    out.narrow(0, begin, end - begin).narrow(1, 0, mb.length()).copy_(lp.cpu());
    if (entropy != nullptr) entropy->narrow(0, begin, end - begin).narrow(1, 0, mb.length()).copy_(ent.cpu());
  }
  if (plan.order.defined()) {
    out = torch::empty_like(out).index_copy_(0, plan.order, out);
    if (entropy != nullptr) *entropy = torch::empty_like(*entropy).index_copy_(0, plan.order, *entropy);
  }
  return out;
}

torch::Tensor trainer::policy_logprobs(const train_batch& batch, double temperature, torch::Tensor* entropy) {
  return logprobs_microbatched(policy_, batch, temperature, entropy);
}

torch::Tensor trainer::reference_logprobs(const train_batch& batch, double temperature) {
  if (!reference_) throw std::logic_error("reference_logprobs: this trainer was built without a reference model");
  return logprobs_microbatched(*reference_, batch, temperature, nullptr);
}

// --- data parallel ----------------------------------------------------------------------

void trainer::sync_replicas() {
  if (!data_parallel()) return;
  torch::NoGradGuard no_grad;
  auto tensors = module_tensors(policy_);
  group_->broadcast(tensors, "policy weights");

  // Which parameters have AdamW state on rank 0, their step counts, the counters and
  // the generator; then the moments of those parameters.
  auto& state = optimizer_->state();
  const auto P = static_cast<std::int64_t>(params_.size());
  auto has = torch::zeros({P}, torch::kInt64), steps = torch::zeros({P}, torch::kInt64);
  for (std::int64_t i = 0; i < P; ++i) {
    auto it = state.find(params_[static_cast<std::size_t>(i)].unsafeGetTensorImpl());
    if (it == state.end()) continue;
    has[i] = 1;
    steps[i] = static_cast<torch::optim::AdamWParamState&>(*it->second).step();
  }
  auto counters = torch::tensor({step_, skipped_steps_, consecutive_nonfinite_}, torch::kInt64);
  std::vector<torch::Tensor> head{has, steps, counters, generator_state(generator_)};
  group_->broadcast(head, "trainer state");
  const auto* h = head[0].contiguous().data_ptr<std::int64_t>();
  const auto s = head[1].contiguous();
  std::vector<torch::Tensor> moments;
  for (std::int64_t i = 0; i < P; ++i) {
    auto& p = params_[static_cast<std::size_t>(i)];
    void* key = p.unsafeGetTensorImpl();
    if (h[i] == 0) {
      state.erase(key);
      continue;
    }
    auto it = state.find(key);
    if (it == state.end()) {
      auto fresh = std::make_unique<torch::optim::AdamWParamState>();
      fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      it = state.emplace(key, std::move(fresh)).first;
    }
    auto& st = static_cast<torch::optim::AdamWParamState&>(*it->second);
    st.step(s[i].item<std::int64_t>());
    moments.push_back(st.exp_avg());
    moments.push_back(st.exp_avg_sq());
  }
  group_->broadcast(moments, "optimizer state");
  const auto c = head[2].contiguous();
  step_ = c[0].item<std::int64_t>();
  skipped_steps_ = c[1].item<std::int64_t>();
  consecutive_nonfinite_ = c[2].item<std::int64_t>();
  set_generator_state(generator_, head[3]);
}

// --- checkpoints ----------------------------------------------------------------------

void trainer::save_checkpoint(const std::string& dir) {
  const fs::path target = fs::absolute(fs::path(dir)).lexically_normal();
  const auto name = target.filename().string();
  const fs::path parent = target.parent_path();
  const fs::path tmp = parent / (".tmp-" + name + "-" + std::to_string(::getpid()));
  const fs::path old = parent / (".old-" + name + "-" + std::to_string(::getpid()));
  const auto dtype = policy_->dtype();
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16 && dtype != torch::kFloat16)
    throw input_error("checkpoint '" + target.string() + "': Hugging Face checkpoints hold float32, bfloat16 or float16 "
                      "weights, and the policy is " + std::string(c10::toString(dtype)));
  std::error_code ec;
  auto fail = [&](const std::string& what) {
    fs::remove_all(tmp, ec);
    throw system_error("checkpoint '" + target.string() + "': " + what);
  };
  fs::create_directories(parent, ec);
  if (ec) fail("cannot create the parent directory: " + ec.message());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail("cannot create " + tmp.string() + ": " + ec.message());
  try {
    save_pretrained(policy_, tmp.string(), dtype);

    torch::serialize::OutputArchive state, optim;
    optimizer_->save(optim);
    state.write("optimizer", optim);
    state.write("format", torch::tensor(state_format));
    state.write("step", torch::tensor(step_));
    state.write("skipped_steps", torch::tensor(skipped_steps_));
    state.write("consecutive_nonfinite", torch::tensor(consecutive_nonfinite_));
    auto cpu = at::detail::getDefaultCPUGenerator();
    state.write("rng_cpu", generator_state(cpu));
    state.write("rng_trainer", generator_state(generator_));
    // Into memory, then to the file with checked writes: LibTorch's own file writer
    // throws again from its destructor when a write fails (a full disk), which ends
    // the process through std::terminate instead of failing this checkpoint.
    std::ostringstream bytes;
    state.save_to(bytes);
    write_file_atomically((tmp / state_file_name).string(), bytes.str());
  } catch (const std::exception& e) {
    fail(e.what());
  }
  for (const auto& entry : fs::directory_iterator(tmp, ec)) fsync_path(entry.path().string(), O_RDONLY);
  fsync_path(tmp.string(), O_RDONLY | O_DIRECTORY);

  // rename(2) does not replace a non-empty directory: move an old one aside first.
  const bool replacing = fs::exists(target, ec);
  if (replacing) {
    fs::remove_all(old, ec);
    fs::rename(target, old, ec);
    if (ec) fail("cannot move the existing directory aside: " + ec.message());
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    if (replacing) fs::rename(old, target, ec);
    fail("cannot rename " + tmp.string() + " into place: " + ec.message());
  }
  fsync_path(parent.string(), O_RDONLY | O_DIRECTORY);
  if (replacing) fs::remove_all(old, ec);
}

void trainer::load_checkpoint(const std::string& dir) {
  const auto state_path = (fs::path(dir) / state_file_name).string();
  if (!fs::exists(state_path))
    throw input_error("checkpoint '" + dir + "': no " + state_file_name + " (not written by trainer::save_checkpoint?)");
  load_weights(policy_, dir);

  torch::serialize::InputArchive state, optim;
  try {
    state.load_from(state_path);
  } catch (const std::exception& e) {
    throw input_error(state_path + ": not a trainer state file: " + e.what());
  }
  auto read_int = [&](const char* key) {
    torch::Tensor t;
    if (!state.try_read(key, t)) throw input_error(state_path + ": missing '" + std::string(key) + "'");
    return t.item<std::int64_t>();
  };
  if (read_int("format") != state_format)
    throw input_error(state_path + ": format " + std::to_string(read_int("format")) + ", this troupe reads " +
                      std::to_string(state_format));
  if (!state.try_read("optimizer", optim)) throw input_error(state_path + ": missing 'optimizer'");
  try {
    optimizer_->load(optim);
  } catch (const std::exception& e) {
    throw input_error(state_path + ": optimizer state does not fit this policy: " + e.what());
  }
  apply_optimizer_options();
  step_ = read_int("step");
  skipped_steps_ = read_int("skipped_steps");
  consecutive_nonfinite_ = read_int("consecutive_nonfinite");
  torch::Tensor rng_cpu, rng_trainer;
  if (!state.try_read("rng_cpu", rng_cpu) || !state.try_read("rng_trainer", rng_trainer))
    throw input_error(state_path + ": missing generator states");
  auto cpu = at::detail::getDefaultCPUGenerator();
  set_generator_state(cpu, rng_cpu);
  set_generator_state(generator_, rng_trainer);
}

}  // namespace troupe
