// The numerics of every update: clipped policy gradient (GRPO / DAPO / GSPO) with KL to
// a reference, DPO / IPO, top-k distillation, SFT, and the entropy metric. They follow
// NeMo RL (nemo_rl/algorithms/loss_functions.py) formula by formula, and use its option
// names where one exists; the differences are listed at the end of this comment.
//
// Shapes: B sequences, T response positions, V vocabulary, k teacher top-k, P preference
// pairs. Every per-token tensor is already aligned: position t of lp, lp_old, lp_gen,
// lp_ref, advantages and mask all describe the same response token (the caller drops
// the prompt and shifts logits by one, as generation.hpp's score_logprobs does).
// `mask` is float, 1 for a response token and 0 for padding; values at masked positions
// are ignored (they may hold anything, NaN included: they are replaced by 0 before use).
//
// ---- The global-normalization contract --------------------------------------------
// A trainer splits a global batch into microbatches and accumulates gradients. Every
// loss here takes the normalizer of the WHOLE global batch and returns the microbatch's
// share, so that
//
//     sum over microbatches of loss(microbatch, global)  ==  loss(whole batch, global)
//
// for the value and for the gradients (tested to 1e-12 in fp64).
//   token level     sum over the microbatch's valid tokens of term / global_tokens
//   sequence level  sum over its sequences of (mean over that sequence's valid tokens
//                   of term) / global_sequences
//   DPO             sum over its pairs of term / global_pairs
// count_totals(mask) gives a microbatch's counts; add them up over the global batch.
// A sequence with no valid token contributes 0 and is not counted by count_totals. A
// normalizer of 0 (a global batch without a valid token) gives a loss of 0; a
// normalizer smaller than the microbatch's own count is an input_error, because it
// means a per-microbatch count was passed.
//
// ---- Metrics ----------------------------------------------------------------------
// Losses return a loss_metrics: for each name, sums that can be merged across
// microbatches (and ranks) with add() before finalize() turns them into values:
//   mean  sum of values and count (tokens, sequences or pairs); finalize: sum / count,
//         so a merged token mean is the exact mean over all tokens of the global batch
//   sum   already globally normalized (the loss, pg_loss, ...): finalize is the sum
//   min / max over all tokens seen
// A mean with a count of 0 finalizes to 0; a min/max never seen is absent.
//
// ---- Differences from NeMo RL, on purpose -----------------------------------------
// - NeMo's masked_mean divides by (normalizer + 1e-8); here the division is exact.
//   Values differ by a relative 1e-8 / N, far below anything a run notices.
// - Options that NeMo leaves as null (ratio_clip_c, the KL clamps, ...) are 0 here
//   for "off", because config fields are plain numbers.
// - Not implemented: disable_ppo_ratio, force_on_policy_ratio, use_kl_in_reward,
//   "seq-mask-tis", distillation's zero_outside_topk.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "algorithms/algorithm_config.hpp"

namespace troupe {

// ---- metrics -------------------------------------------------------------------------

class loss_metrics {
 public:
  enum class reduction { mean, sum, min, max };

  void add_mean(const std::string& name, double sum, double count);
  void add_sum(const std::string& name, double value);
  void add_min(const std::string& name, double value);
  void add_max(const std::string& name, double value);
  // Merges another microbatch's metrics. Throws std::logic_error when one name has two
  // reductions.
  void add(const loss_metrics& other);

  bool contains(const std::string& name) const;
  // The finalized value of one metric; std::out_of_range if absent.
  double value(const std::string& name) const;
  // Every metric, finalized.
  std::map<std::string, double> finalize() const;

  // The unfinalized sums as text that decode() reads back exactly (hex floats), so that
  // data-parallel ranks can exchange them and merge with add() (algorithms/trainer.cpp).
  std::string encode() const;
  // Throws std::invalid_argument for text encode() did not write.
  static loss_metrics decode(const std::string& text);

 private:
  struct entry {
    reduction how = reduction::sum;
    double a = 0;  // sum / value / min / max
    double b = 0;  // count (mean only)
  };
  entry& slot(const std::string& name, reduction how);
  std::map<std::string, entry> entries_;
};

// A loss of one microbatch: `loss` is a scalar to call backward() on (or to add to the
// accumulated loss), `metrics` the sums above.
struct loss_result {
  torch::Tensor loss;  // () scalar, the microbatch's share of the global loss
  loss_metrics metrics;
};

// Counts of one microbatch; add them over the global batch to get the normalizers.
struct batch_totals {
  double tokens = 0;     // sum of mask
  double sequences = 0;  // rows with at least one valid token
  double rows = 0;       // all rows (DPO: two per pair)
  batch_totals& operator+=(const batch_totals& o) {
    tokens += o.tokens;
    sequences += o.sequences;
    rows += o.rows;
    return *this;
  }
};
batch_totals count_totals(const torch::Tensor& mask /* (B, T) */);

// ---- clipped policy gradient (GRPO, DAPO, GSPO) ---------------------------------------


struct pg_inputs {
  torch::Tensor lp;          // (B, T) current policy, requires grad
  torch::Tensor lp_old;      // (B, T) policy before this update
  torch::Tensor lp_gen;      // (B, T) generator's; undefined: taken as lp_old (w = 1)
  torch::Tensor lp_ref;      // (B, T) reference; needed when beta != 0
  torch::Tensor advantages;  // (B) per sequence, or (B, T) per token
  torch::Tensor mask;        // (B, T) float
};

// Per token, with r = exp(lp - lp_old) (GSPO: s broadcast over the sequence) and A:
//   l = max(-A r, -A clip(r, 1 - eps_low, 1 + eps_high))
//   dual clip: l = min(l, -A c) where A < 0
//   loss = normalize(w l) + normalize(beta kl)    (normalize: token or sequence level)
// Metrics (token means unless said; r is the GSPO ratio where it applies):
//   loss, pg_loss, kl_penalty (sum: the normalized KL term without beta; only with
//     lp_ref), which add up across microbatches to the global values
//   clip_fraction_low    tokens with A < 0 and r < 1 - eps_low: the lower clip is the
//                        active branch of the max (the token gets no gradient)
//   clip_fraction_high   tokens with A > 0 and r > 1 + eps_high (likewise)
//   dual_clip_fraction   tokens with A < 0 and r > c (the dual-clip cap is active)
//   approx_kl            (r - 1) - log r, an estimate of KL(pi_old || pi)
//   token_mult_prob_error  exp(|lp_gen - lp_old|): 1.0 when generator and trainer agree
//   gen_kl_error, policy_kl_error, js_divergence_error: NeMo's generator/trainer
//     mismatch estimates (k-type as configured, no clamps)
//   probs_ratio, probs_ratio_clamped (means), probs_ratio_min / _max (min / max)
//   sampling_importance_ratio  mean w after truncation (GSPO: a sequence mean)
//   is_oob_ratio         (icepop) fraction of tokens whose w was masked out
//   approx_entropy       -exp(lp - lp_gen) lp
// Throws input_error on shape mismatches, a missing lp_ref with beta != 0, or a bad
// normalizer; the config is validated on every call.
loss_result clipped_pg_loss(const clipped_pg_config& cfg, const pg_inputs& in, const batch_totals& global);

// The per-token KL estimate between lp and lp_ref (both (B, T)): the estimator the KL
// term uses, without beta, masking or weights. Exposed for tests and reward shaping.
torch::Tensor kl_estimate(const torch::Tensor& lp, const torch::Tensor& lp_ref, const std::string& kl_type,
                          double input_clamp, double output_clamp);  // (B, T)

// ---- DPO / IPO -------------------------------------------------------------------------


struct dpo_inputs {
  torch::Tensor lp_chosen;        // (P, T) requires grad
  torch::Tensor lp_ref_chosen;    // (P, T)
  torch::Tensor mask_chosen;      // (P, T)
  torch::Tensor lp_rejected;      // (P, T') requires grad
  torch::Tensor lp_ref_rejected;  // (P, T')
  torch::Tensor mask_rejected;    // (P, T')
};

// Per pair, with delta = r_chosen - r_rejected:
//   sigmoid  L = -log sigmoid(beta delta)        ipo  L = (delta - 1 / (2 beta))^2
//   loss = sum over pairs of (w_pref L + w_sft NLL_chosen) / global_pairs
// Metrics: loss, preference_loss, sft_loss (sums); accuracy (pairs with r_chosen >
// r_rejected, strictly), rewards_chosen_mean, rewards_rejected_mean (beta r, TRL's
// convention; NeMo logs r without beta), reward_margin (beta delta) as pair means.
loss_result dpo_loss(const dpo_config& cfg, const dpo_inputs& in, double global_pairs);

// ---- top-k distillation ------------------------------------------------------------------


struct distillation_inputs {
  torch::Tensor student_logits;        // (B, T, V) requires grad
  torch::Tensor teacher_topk_logits;   // (B, T, k)
  torch::Tensor teacher_topk_indices;  // (B, T, k) int64, ids in [0, V)
  torch::Tensor mask;                  // (B, T)
};

// p_T = softmax(teacher top-k logits), q = softmax(student logits at the same k ids):
// both renormalized over those k. Per token: forward = sum p_T (log p_T - log q),
// reverse = sum q (log q - log p_T), mixed = lambda forward + (1 - lambda) reverse;
// token level over the global batch. The k in the tensors need not equal the config's
// topk_logits_k, but must be <= V. Metrics: loss (sum), forward_kl, reverse_kl (means).
loss_result distillation_loss(const distillation_config& cfg, const distillation_inputs& in, double global_tokens);

// ---- SFT, entropy, helpers -----------------------------------------------------------------

// Masked token NLL: sum of -lp over valid tokens / global_tokens. lp (B, T) are the
// logprobs of the target tokens. Metrics: loss (sum), nll (token mean), tokens (sum).
loss_result nll_loss(const torch::Tensor& lp, const torch::Tensor& mask, double global_tokens);

// logprob of tokens[b, t] under log_softmax(logits[b, t]); logits (B, T, V), tokens
// (B, T) int64 -> (B, T) in float32 (or float64 for float64 logits).
torch::Tensor gather_token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens);

// The entropy of softmax(logits) summed over valid tokens, for train/entropy: mean =
// sum / tokens, or merge into loss_metrics with add_mean. logits (B, T, V), mask (B, T).
// Computed over chunks of rows of B so that a chunk's float32 copy stays under
// `chunk_bytes` (at least one row); differentiable w.r.t. logits (run it under
// torch::NoGradGuard for the metric alone, and memory stays at one chunk).
struct entropy_sum {
  torch::Tensor sum;  // () scalar, float32 (float64 for float64 logits)
  double tokens = 0;
};
entropy_sum masked_entropy(const torch::Tensor& logits, const torch::Tensor& mask,
                           std::int64_t chunk_bytes = std::int64_t{256} << 20);

// Whether a loss or every defined tensor of a set is free of NaN and inf (one device
// sync). all_grads_finite looks at the .grad() of each parameter that has one. The
// trainer skips a step when these say false.
bool all_finite(const torch::Tensor& t);
bool all_finite(const std::vector<torch::Tensor>& ts);
bool all_grads_finite(const std::vector<torch::Tensor>& parameters);

}  // namespace troupe
