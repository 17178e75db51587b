// The trainer core: one optimizer step over a global batch, split into microbatches
// whose gradients accumulate. A plain class; the trainer actor is a thin shell over it.
//
// One train_step(batch, loss):
//   1. checks the batch and computes the global normalizers over all of it
//      (global_totals: valid response tokens, sequences with a response token);
//   2. sets the learning rate of this step from the schedule (scheduled_lr);
//   3. for each microbatch (plan_microbatches: `microbatch_size` rows in order, or rows
//      sorted by length up to `microbatch_tokens`; each trimmed to its longest
//      sequence), calls loss(policy, microbatch, norms) and backward() on the loss it
//      returns: gradients accumulate, nothing is rescaled;
//   4. computes the global gradient norm, clips it to max_grad_norm, steps AdamW.
// A loss or gradient that is not finite skips 4 (weights and optimizer state stay as
// they were); max_consecutive_nonfinite such steps in a row throw training_diverged.
//
// Data parallel (a trainer built with a data_parallel_group, algorithms/data_parallel.hpp):
// each rank passes its own shard of the global batch to train_step. Then
//   1. the normalizers are summed over the ranks before any loss sees them;
//   3b. after the last microbatch, the gradients (a missing one counting as 0), the
//      NaN/inf flag, the loss sum and the microbatch count are summed over the ranks in
//      one bucketed all-reduce, so every rank holds the whole batch's gradients;
//   4. rank 0's grad norm is broadcast, so the clip coefficient and the skip decision
//      are the same everywhere; each rank steps its own AdamW on identical gradients.
// The loss metrics are merged over the ranks (all-gather of their sums), so every rank
// reports the global values. N ranks thus take the step one rank takes on the union of
// the shards, up to the order of floating-point sums.
//
// The loss contract (algorithms/losses.hpp states and follows it): a loss divides by the GLOBAL
// normalizer it is given, never by a count of its own microbatch, so that the sum of
// the microbatch losses is the loss of the whole batch, whatever microbatch_size is.
//
// Shapes: B sequences, T positions (right-padded), V vocabulary, k top-k.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config_binding.hpp"
#include "core/error.hpp"
#include "algorithms/algorithm_config.hpp"
#include "policies/causal_lm.hpp"
#include "algorithms/data_parallel.hpp"
#include "algorithms/losses.hpp"

namespace troupe {


// The learning rate of the 0-based step `step` (the step about to be taken).
//   constant       lr
//   linear_warmup  lr * (step + 1) / warmup_steps while step < warmup_steps, then lr
//   cosine         the same warmup, then min_lr + (lr - min_lr) * (1 + cos(pi p)) / 2 with
//                  p = (step - warmup_steps) / (total_steps - warmup_steps), clamped to 1
//                  (min_lr from total_steps on)
double scheduled_lr(const trainer_section& cfg, std::int64_t step);

// A global batch of right-padded sequences, or a microbatch of one (the same type).
// Every tensor's first dimension is B; per_token tensors' second is T. Tensors may be on
// the CPU: the trainer moves each microbatch to the policy's device.
struct train_batch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) 0/1 (any integer, float or bool dtype), 1 = real token, right-padded
  torch::Tensor response_mask;   // (B, T) 0/1, 1 = token t is trained; 0 at t = 0 and on padding
  // Extra inputs of the loss, by name, kept aligned by slice():
  //   per_sequence: (B, ...), e.g. "advantages" (B)
  //   per_token:    (B, T, ...), e.g. "old_logprobs", "gen_logprobs", "ref_logprobs" (B, T),
  //                 "teacher_topk_logprobs" / "teacher_topk_indices" (B, T, k)
  std::map<std::string, torch::Tensor> per_sequence;
  std::map<std::string, torch::Tensor> per_token;

  std::int64_t size() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  std::int64_t length() const { return input_ids.defined() ? input_ids.size(1) : 0; }

  // Rows [begin, end) with every tensor, the per_token ones cut to the first `length`
  // positions (-1: all). Views, no copies.
  train_batch slice(std::int64_t begin, std::int64_t end, std::int64_t length = -1) const;
  // The rows `index` (n) int64 names, in its order, with every tensor (copies).
  train_batch rows(const torch::Tensor& index) const;

  // The tensor named `name` in per_sequence or per_token; input_error naming it and the
  // names present when it is missing.
  const torch::Tensor& extra(const std::string& name) const;

  // Throws input_error for wrong shapes or dtypes, left padding, a response token at
  // t = 0 or on padding, or an extra tensor whose leading dimensions do not match.
  void validate() const;
};

// The normalizers of the whole global batch, given to every microbatch's loss:
// batch_totals (algorithms/losses.hpp) summed over response_mask: tokens = its sum,
// sequences = rows with at least one response token, rows = all rows. (Of this batch
// only: a data-parallel trainer sums them over its ranks.)
batch_totals global_totals(const train_batch& batch);

// How a batch is cut into microbatches: `ordered` is the batch with its rows in the
// order they run, and each span is rows [begin, end) of it, cut to `length` positions
// (its longest row). With microbatch_tokens = 0 the rows keep their order and every span
// but the last has microbatch_size rows. With microbatch_tokens > 0 the rows are sorted
// by length, longest first (ties keep their order), and a span takes rows while
// rows x its first row's length stays within the budget; a row longer than the budget
// forms a span alone. The losses normalize by the global batch, so the plan changes
// which padding is computed, not the update (up to summation order).
struct microbatch_span {
  std::int64_t begin = 0, end = 0, length = 0;
};
struct microbatch_plan {
  train_batch ordered;
  torch::Tensor order;  // (B) int64: row i of `ordered` is row order[i] of the batch; undefined when in order
  std::vector<microbatch_span> spans;
  std::int64_t computed_tokens() const;  // sum over spans of rows x length: what the forward passes cover
};
microbatch_plan plan_microbatches(const train_batch& batch, std::int64_t microbatch_size,
                                  std::int64_t microbatch_tokens);

// loss(policy, microbatch, global) returns a loss_result (algorithms/losses.hpp):
//   loss     () scalar with grad: this microbatch's share of the global loss (divided
//            by a global normalizer). One that does not require grad (e.g. a microbatch
//            without response tokens) is added to the reported loss, not back-propagated.
//   metrics  loss_metrics; the trainer merges them over microbatches with add() and
//            reports each finalized value as "train/<name>".
// The microbatch's tensors are on the policy's device; the loss computes the current
// logprobs itself (token_logprobs) with grad enabled.
using loss_fn = std::function<loss_result(causal_lm& policy, const train_batch& microbatch, const batch_totals& global)>;

// Logprobs of the given tokens under `model`: lp (B, T), lp[b, t] = log p(ids[b, t] |
// ids[b, :t]) under log_softmax(logits / temperature) (position t-1 predicts t), for
// the positions where `where` (B, T) is nonzero; 0 elsewhere and at t = 0.
// Logits are computed for those positions only. Float32 for float32/bfloat16/float16
// models, float64 for float64 ones. Differentiable when grad mode is on; agrees with
// score_logprobs (policies/generation.hpp).
// `segment_ids` (B, T), when defined, marks packed rows (causal_lm::hidden_states).
// `entropy`, when given, receives the entropy (B, T) of each scored position's
// distribution (the same logits and temperature; 0 elsewhere), detached: a diagnostic
// at the cost of one pass over logits already there, instead of another forward.
torch::Tensor token_logprobs(causal_lm& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                             const torch::Tensor& where, double temperature = 1.0,
                             const torch::Tensor& segment_ids = {}, torch::Tensor* entropy = nullptr);
// The same over a (micro)batch's response_mask; a per_token "segment_ids" (B, T) makes
// its rows packed.
torch::Tensor token_logprobs(causal_lm& model, const train_batch& batch, double temperature = 1.0);

// The teacher's top-k next-token logprobs over the student's tokens, for distillation:
// values[b, t, :] and indices[b, t, :] describe the teacher's distribution for position
// t (predicted at t-1), largest first, where response_mask is 1; zeros elsewhere.
struct topk_logprobs {
  torch::Tensor values;   // (B, T, k) float32 (float64 for a float64 teacher), on the CPU
  torch::Tensor indices;  // (B, T, k) int64, on the CPU
};
// No grad. Runs `microbatch_size` rows at a time (0: all at once).
topk_logprobs teacher_topk(causal_lm& teacher, const train_batch& batch, std::int64_t k,
                           std::int64_t microbatch_size = 0, double temperature = 1.0);

// What one train_step did.
struct train_step_result {
  std::int64_t step = 0;  // trainer::step() after this call (skipped steps count)
  bool skipped = false;   // NaN/inf: no optimizer step
  // The loss's metrics merged over microbatches as "train/<name>", then the trainer's
  // own (which win on a clash): "train/loss" (sum of microbatch losses; absent when not
  // finite), "train/grad_norm" (global, before clipping; absent when not computed or not
  // finite), "train/lr", "train/tokens", "train/sequences", "train/microbatches",
  // "train/padding_fraction" (of the positions the forward passes covered, the share that
  // was padding: what trainer.microbatch_tokens saves), "train/skipped" (0/1),
  // "train/skipped_steps" (all so far).
  std::map<std::string, double> metrics;
};

// Thrown by train_step after max_consecutive_nonfinite skipped steps in a row. The
// trainer is still consistent (weights of the last finite step): checkpoint and stop.
class training_diverged : public system_error {
 public:
  using system_error::system_error;
};

class trainer {
 public:
  // Trains `policy` in place (the handle is shared). With `with_reference`, a frozen
  // copy of the policy as it is now (eval, no grads) becomes the reference model. When
  // resuming, build the trainer from the run's initial weights and then call
  // load_checkpoint: the reference stays the initial policy. Throws input_error for an
  // invalid section (trainer_section::validate).
  // With a `group` of more than one rank, the constructor is a collective: rank 0's
  // policy weights are broadcast into every rank's policy before the reference is
  // copied from it, so all replicas (and references) start identical.
  trainer(causal_lm policy, trainer_section cfg, bool with_reference = true,
          std::shared_ptr<data_parallel_group> group = nullptr);

  // One optimizer step over `batch` (see the top of this file). Throws input_error for
  // a malformed batch or one without response tokens, training_diverged as above.
  train_step_result train_step(const train_batch& batch, const loss_fn& loss);

  // Logprobs (B, T) on the CPU of the batch's response tokens, no grad, microbatched:
  // under the current policy (lp_old) and under the reference model (lp_ref; logic_error
  // without one). `entropy`, when given, receives the policy's entropy (B, T) at the
  // same positions from the same forward (token_logprobs).
  torch::Tensor policy_logprobs(const train_batch& batch, double temperature = 1.0, torch::Tensor* entropy = nullptr);
  torch::Tensor reference_logprobs(const train_batch& batch, double temperature = 1.0);

  // Writes `dir` atomically (built as a temporary sibling, then renamed; an existing
  // `dir` is replaced): the policy in Hugging Face layout, in its own dtype
  // (save_pretrained; float32, bfloat16 or float16), and trainer_state.pt with the
  // optimizer state, the CPU generator's and the trainer's generator's states, step
  // and skip counters. Throws system_error naming the path (nothing is left behind),
  // input_error for a policy in another dtype (float64).
  void save_checkpoint(const std::string& dir);
  // Restores what save_checkpoint wrote into this trainer and its policy: training then
  // continues bit-identically. The section's optimizer settings (lr, betas, ...) stay
  // this trainer's. Throws input_error naming the file for a missing or foreign file.
  void load_checkpoint(const std::string& dir);

  // Data parallel, a collective: rank 0's policy weights and buffers, optimizer state
  // (AdamW moments and step counts, states missing on rank 0 dropped elsewhere), step
  // and skip counters and generator() state into every rank. After a restore: rank 0
  // calls load_checkpoint then this; the other ranks call only this (they need not see
  // the checkpoint). A no-op without a group.
  void sync_replicas();

  // The group (nullptr when training alone).
  data_parallel_group* group() const { return group_.get(); }

  causal_lm& policy() { return policy_; }
  causal_lm* reference() { return reference_ ? &*reference_ : nullptr; }
  const trainer_section& config() const { return cfg_; }
  std::int64_t step() const { return step_; }  // train_step calls completed
  std::int64_t skipped_steps() const { return skipped_steps_; }
  // For anything random the trainer's user draws; saved and restored with checkpoints.
  at::Generator& generator() { return generator_; }

 private:
  torch::Tensor logprobs_microbatched(causal_lm& model, const train_batch& batch, double temperature,
                                      torch::Tensor* entropy);
  void apply_optimizer_options();
  bool data_parallel() const { return group_ && group_->world_size() > 1; }

  // train_step's stages, in order.
  struct accumulated {  // what the microbatches' backward passes left
    double loss_sum = 0;
    std::int64_t microbatches = 0;
    bool finite = true;          // every microbatch's loss was finite
    double computed_tokens = 0;  // rows x padded length, over the microbatches
    double real_tokens = 0;      // attention_mask's ones
    loss_metrics metrics;
  };
  // The batch's token, sequence and row counts (over every rank's shard).
  batch_totals global_normalizers(const train_batch& batch);
  // Forward and backward over the microbatch plan; stops at a non-finite loss.
  accumulated accumulate_gradients(const train_batch& batch, const loss_fn& loss, const batch_totals& norms);
  // Data parallel: sums gradients, flags and counts over the ranks.
  void reduce_gradients(accumulated& acc);
  // The global gradient norm, clipped to max_grad_norm; nothing when it is not finite.
  std::optional<double> clip_gradients();
  // The optimizer step, or a skipped one (gradients dropped), with the step counters.
  void apply_or_skip(bool finite);

  trainer_section cfg_;
  causal_lm policy_;
  std::optional<causal_lm> reference_;
  std::vector<torch::Tensor> params_;  // the policy's trainable parameters, in order
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  at::Generator generator_;
  std::int64_t step_ = 0;
  std::int64_t skipped_steps_ = 0;
  std::int64_t consecutive_nonfinite_ = 0;
  std::shared_ptr<data_parallel_group> group_;
};

// A frozen copy of `model` (same config, device, dtype and weights; eval; no grads).
causal_lm frozen_copy(causal_lm& model);

}  // namespace troupe
