#include "algorithms/advantages.hpp"

#include "core/error.hpp"

namespace troupe {

namespace {

void require_groups(const torch::Tensor& rewards, const char* what) {
  if (!rewards.defined() || rewards.dim() != 2 || !rewards.is_floating_point()) {
    throw input_error(std::string(what) + ": rewards must be a floating (P, G) tensor, prompts by group members");
  }
}

// (P, 1) bool: the group's rewards are all exactly equal.
torch::Tensor constant_group(const torch::Tensor& rewards /* (P, G) */) {
  if (rewards.size(1) == 0) return torch::ones({rewards.size(0), 1}, rewards.options().dtype(torch::kBool));
  return std::get<0>(rewards.max(1, true)) == std::get<0>(rewards.min(1, true));
}

torch::Tensor zero_where_constant(const torch::Tensor& adv /* (P, G) */, const torch::Tensor& rewards) {
  return torch::where(constant_group(rewards), torch::zeros({}, adv.options()), adv);
}

}  // namespace

baseline_and_std leave_one_out_baseline_and_std(const torch::Tensor& rewards) {
  require_groups(rewards, "leave_one_out_baseline_and_std");
  const std::int64_t G = rewards.size(1);
  baseline_and_std out;
  if (G <= 1) {
    out.baseline = rewards.clone();
    out.std = torch::zeros_like(rewards);
    return out;
  }
  const torch::Tensor total = rewards.sum(1, true);                // (P, 1)
  out.baseline = (total - rewards) / static_cast<double>(G - 1);  // (P, G)
  // dev[p, i, j] = R_pj - baseline_pi, for j != i.
  torch::Tensor dev = rewards.unsqueeze(1) - out.baseline.unsqueeze(2);  // (P, G, G)
  torch::Tensor others = 1 - torch::eye(G, rewards.options());          // (G, G) 0 on the diagonal
  // The population std of the G - 1 others, as NeMo RL computes it
  // (sqrt(mean of squares - square of mean) over the others).
  out.std = ((dev.square() * others).sum(2) / static_cast<double>(G - 1)).sqrt();  // (P, G)
  return out;
}

torch::Tensor leave_one_out_advantages(const torch::Tensor& rewards, bool normalize_std, double epsilon) {
  const baseline_and_std bs = leave_one_out_baseline_and_std(rewards);
  torch::Tensor adv = rewards - bs.baseline;  // (P, G)
  if (normalize_std) {
    // NeMo RL normalizes only where std > 0. Rewards that are equal but not exactly
    // representable (0.1) leave a std of rounding noise (~1e-17), and dividing by that
    // plus epsilon would turn one reward of difference into an advantage of ~1e6. A std
    // below 1e-9 of the group's reward scale counts as 0.
    auto scale = rewards.abs().amax(1, true).clamp_min(1.0);  // (P, 1)
    adv = torch::where(bs.std > scale * 1e-9, adv / (bs.std + epsilon), adv);
  }
  return zero_where_constant(adv, rewards);
}

torch::Tensor group_normalized_advantages(const torch::Tensor& rewards, double epsilon, bool unbiased_std) {
  require_groups(rewards, "group_normalized_advantages");
  const std::int64_t G = rewards.size(1);
  if (G <= 1) return torch::zeros_like(rewards);
  const torch::Tensor mean = rewards.mean(1, true);                                                 // (P, 1)
  const torch::Tensor var = (rewards - mean).square().sum(1, true) / static_cast<double>(unbiased_std ? G - 1 : G);
  return zero_where_constant((rewards - mean) / (var.sqrt() + epsilon), rewards);
}

torch::Tensor group_mean_advantages(const torch::Tensor& rewards) {
  require_groups(rewards, "group_mean_advantages");
  if (rewards.size(1) == 0) return rewards.clone();
  return zero_where_constant(rewards - rewards.mean(1, true), rewards);
}

void advantage_config::validate() const {
  if (estimator != "leave_one_out" && estimator != "rloo" && estimator != "group_std" && estimator != "group_mean") {
    throw input_error("advantages: estimator must be leave_one_out, rloo, group_std or group_mean, not '" + estimator +
                      "'");
  }
  if (!(std_epsilon >= 0)) throw input_error("advantages: std_epsilon must be >= 0; 1e-6 is usual");
}

torch::Tensor compute_advantages(const advantage_config& cfg, const torch::Tensor& rewards) {
  cfg.validate();
  if (cfg.estimator == "leave_one_out") return leave_one_out_advantages(rewards, true, cfg.std_epsilon);
  if (cfg.estimator == "rloo") return leave_one_out_advantages(rewards, false, cfg.std_epsilon);
  if (cfg.estimator == "group_std") return group_normalized_advantages(rewards, cfg.std_epsilon, cfg.unbiased_std);
  return group_mean_advantages(rewards);
}

torch::Tensor zero_variance_groups(const torch::Tensor& rewards) {
  require_groups(rewards, "zero_variance_groups");
  return constant_group(rewards).squeeze(1);  // (P)
}

dynamic_sampling_buffer::dynamic_sampling_buffer(std::int64_t target_groups, std::int64_t max_rounds)
    : target_(target_groups), max_rounds_(max_rounds) {
  if (target_groups < 1) throw input_error("dynamic sampling: the target number of groups must be >= 1");
  if (max_rounds < 0) throw input_error("dynamic sampling: max_rounds must be >= 0 (0 = unlimited)");
}

std::vector<std::int64_t> dynamic_sampling_buffer::offer(const torch::Tensor& rewards) {
  require_groups(rewards, "dynamic sampling");
  if (group_size_ >= 0 && rewards.size(1) != group_size_) {
    throw input_error("dynamic sampling: a round has groups of " + std::to_string(rewards.size(1)) +
                      " but earlier rounds had " + std::to_string(group_size_));
  }
  group_size_ = rewards.size(1);
  ++rounds_;
  seen_ += rewards.size(0);
  const torch::Tensor drop = zero_variance_groups(rewards).to(torch::kCPU);  // (P)
  const auto d = drop.accessor<bool, 1>();
  std::vector<std::int64_t> kept;
  for (std::int64_t p = 0; p < rewards.size(0) && kept_ + static_cast<std::int64_t>(kept.size()) < target_; ++p) {
    if (!d[p]) kept.push_back(p);
  }
  if (!kept.empty()) {
    parts_.push_back(rewards.index_select(0, torch::tensor(kept, torch::kLong).to(rewards.device())));
    kept_ += static_cast<std::int64_t>(kept.size());
  }
  if (!full() && max_rounds_ > 0 && rounds_ >= max_rounds_) {
    throw input_error("dynamic sampling: only " + std::to_string(kept_) + " of " + std::to_string(target_) +
                      " groups with varied rewards after " + std::to_string(rounds_) +
                      " generation rounds; raise dynamic_sampling_max_gen_batches, lower the number "
                      "of prompts per step, or use tasks whose rewards are not all-or-nothing");
  }
  return kept;
}

torch::Tensor dynamic_sampling_buffer::rewards() const {
  if (parts_.empty()) return torch::zeros({0, 0});
  return torch::cat(parts_, 0);
}

void dynamic_sampling_buffer::reset() {
  kept_ = 0;
  rounds_ = 0;
  seen_ = 0;
  group_size_ = -1;
  parts_.clear();
}

}  // namespace troupe
