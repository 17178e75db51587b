// Advantage estimators for group-sampled RL (GRPO and its variants), and DAPO's dynamic
// sampling filter.
//
// Rewards arrive as a (P, G) tensor: P prompts, G responses per prompt (the group), in
// any floating dtype; the result has the same shape and dtype, on the same device. A
// flat (P * G) batch laid out prompt by prompt is rewards.view({P, G}).
//
// Every estimator gives 0 to every member of a group with no variance (all G rewards
// equal, exactly), and so to a group of size 1: such a group carries no signal about
// which response was better.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "algorithms/algorithm_config.hpp"

namespace troupe {

// Leave-one-out baseline and spread, NeMo RL's calculate_baseline_and_std_per_prompt
// with leave_one_out_baseline = true:
//   baseline_i = mean_{j != i} R_j
//   std_i      = sqrt( sum_{j != i} (R_j - baseline_i)^2 / (G - 2) )
// i.e. the UNBIASED (Bessel-corrected) standard deviation of the G - 1 other rewards.
// NeMo computes the same quantity as sqrt((E[R^2] - E[R]^2) (G-1)/(G-2)) over the
// others (one pass); here it is two-pass, equal up to rounding. Where it is undefined
// (G <= 2) std_i is 0, as NeMo's nan_to_num(0) makes it; G = 1 gives baseline = R.
struct baseline_and_std {
  torch::Tensor baseline;  // (P, G)
  torch::Tensor std;       // (P, G)
};
baseline_and_std leave_one_out_baseline_and_std(const torch::Tensor& rewards /* (P, G) */);

// NeMo RL's default (use_leave_one_out_baseline and normalize_rewards):
//   A_i = (R_i - baseline_i) / (std_i + epsilon)   where std_i > 0
//   A_i =  R_i - baseline_i                        where std_i == 0 (as NeMo's
//         normalize_advantages_with_epsilon: e.g. rewards (1, 0, 0, 0) give the 1 an
//         unnormalized advantage of 1, because the three others have no spread; and
//         G = 2 is never normalized)
//   A_i = 0 for every member of a group with no variance.
// normalize_std false gives RLOO: A_i = R_i - baseline_i.
torch::Tensor leave_one_out_advantages(const torch::Tensor& rewards /* (P, G) */, bool normalize_std = true,
                                       double epsilon = 1e-6);  // (P, G)

// GRPO paper: A_i = (R_i - mean) / (std + epsilon) over the whole group, std unbiased
// (divides by G - 1, as torch.std and TRL's GRPOTrainer; TRL's epsilon is 1e-4) or
// biased (divides by G) when unbiased_std is false.
torch::Tensor group_normalized_advantages(const torch::Tensor& rewards /* (P, G) */, double epsilon = 1e-6,
                                          bool unbiased_std = true);  // (P, G)

// Dr. GRPO: A_i = R_i - mean over the group, no std.
torch::Tensor group_mean_advantages(const torch::Tensor& rewards /* (P, G) */);  // (P, G)

torch::Tensor compute_advantages(const advantage_config& cfg, const torch::Tensor& rewards /* (P, G) */);

// ---- dynamic sampling (DAPO) -------------------------------------------------------

// Which groups have no variance (all rewards exactly equal; every group of size 1):
// (P) bool, true = drop this group (its advantages are all 0, it teaches nothing).
torch::Tensor zero_variance_groups(const torch::Tensor& rewards /* (P, G) */);

// Collects groups with variance across generation rounds until `target_groups` are
// kept. Each round the caller generates a batch, offers its rewards, and keeps the
// rollouts of the groups offer() returns; once full() it trains on them in order.
//
//   dynamic_sampling_buffer buf(64, /*max_rounds=*/10);
//   while (!buf.full()) { auto r = generate(); for (auto g : buf.offer(r.rewards)) keep(r, g); }
class dynamic_sampling_buffer {
 public:
  // max_rounds: offers allowed before offer() throws (0 = unlimited), NeMo RL's
  // dynamic_sampling_max_gen_batches. target_groups >= 1.
  explicit dynamic_sampling_buffer(std::int64_t target_groups, std::int64_t max_rounds = 0);

  // rewards (P, G) of one round. Returns the indices (into P, ascending) of the groups
  // kept: those with variance, in order, until the target is reached (the surplus is
  // dropped). Throws input_error when G differs from an earlier round, or when the
  // target is not met after max_rounds rounds (say so and how to fix: raise
  // max_rounds or lower the target, or make the task less all-or-nothing).
  std::vector<std::int64_t> offer(const torch::Tensor& rewards);

  bool full() const { return kept_ >= target_; }
  std::int64_t kept() const { return kept_; }
  std::int64_t needed() const { return target_ - kept_; }
  std::int64_t rounds() const { return rounds_; }
  std::int64_t groups_seen() const { return seen_; }
  // The kept groups' rewards in order: (kept, G); an empty (0, 0) tensor before any.
  torch::Tensor rewards() const;
  // Starts over for the next step (same target and max_rounds).
  void reset();

 private:
  std::int64_t target_;
  std::int64_t max_rounds_;
  std::int64_t kept_ = 0;
  std::int64_t rounds_ = 0;
  std::int64_t seen_ = 0;
  std::int64_t group_size_ = -1;
  std::vector<torch::Tensor> parts_;  // each (n_i, G)
};

}  // namespace troupe
