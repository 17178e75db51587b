// The config sections of the algorithms (losses.hpp, advantages.hpp, trainer.hpp), without torch:
// the `troupe` binary reads and prints experiment configs without loading LibTorch
// (actors/torch_plugin.hpp). validate() is defined with the algorithm, in the plugin.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config_binding.hpp"

namespace troupe {

struct clipped_pg_config {
  // Clip range of the ratio r: clip(r, 1 - eps_low, 1 + eps_high). NeMo's
  // ratio_clip_min / ratio_clip_max (DAPO's clip-higher: eps_high > eps_low).
  double eps_low = 0.2;
  double eps_high = 0.2;
  // Dual clip (Ye et al. 2019): for A < 0 the loss is capped at -A c. 0 = off; else > 1.
  double ratio_clip_c = 0;
  // beta: weight of the KL to the reference. 0 = no KL term (lp_ref is not needed).
  double reference_policy_kl_penalty = 0.01;
  // "k1": lp - lp_ref; "k2": 0.5 (lp - lp_ref)^2; "k3" (Schulman):
  // exp(lp_ref - lp) - 1 - (lp_ref - lp).
  std::string reference_policy_kl_type = "k3";
  // The log ratio lp_ref - lp is clamped to [-v, v] before the estimator; 0 = no clamp.
  double kl_input_clamp_value = 20;
  // The per-token KL estimate is clamped to [-v, v] afterwards; 0 = no clamp.
  double kl_output_clamp_value = 10;
  // Weights the per-token KL by exp(lp - lp_gen) (no gradient): an unbiased estimate
  // of KL(pi || pi_ref) from samples of the generator.
  bool use_on_policy_kl_approximation = false;
  // true: every loss term is divided by global_tokens; false: each sequence's mean
  // over its tokens, divided by global_sequences (DAPO's token-level vs GRPO's).
  bool token_level_loss = true;
  // Importance correction for the generator / trainer mismatch (off-policy, FP8):
  // w = exp(lp_old - lp_gen) per token (GSPO: exp(sum_t (lp_old - lp_gen)) per
  // sequence), computed without gradient, NaN / inf replaced by 0, multiplying the
  // per-token loss (not the KL). Off: w = 1.
  bool use_importance_sampling_correction = false;
  // "" : w as is. "tis" (truncated): w = min(w, truncated_importance_sampling_ratio).
  // "icepop" (masked): w = 0 where w < truncated_importance_sampling_ratio_min or
  // w > truncated_importance_sampling_ratio, w unchanged elsewhere; masked tokens stay
  // in the normalizer (their term is 0), as in NeMo. Needs the correction on.
  std::string truncated_importance_sampling_type;
  double truncated_importance_sampling_ratio = 2.0;      // cap (tis) / upper bound (icepop)
  double truncated_importance_sampling_ratio_min = 0.5;  // lower bound (icepop)
  // GSPO: one ratio per sequence, s = exp(mean over its valid tokens of lp - lp_old),
  // clipped like r. Needs token_level_loss = false.
  bool sequence_level_importance_ratios = false;

  // Throws input_error with a sentence saying how to fix: eps_low or eps_high < 0 (or
  // eps_low >= 1, which leaves no lower bound), ratio_clip_c in (0, 1], an unknown KL
  // type, negative clamps or beta, GSPO with token_level_loss, a truncation type
  // without the correction or unknown, tis cap <= 0, icepop min >= max.
  void validate() const;

  template <class V>
  void describe(V& v) {
    v.field("ratio_clip_min", eps_low, "eps_low: the ratio is clipped below at 1 - eps_low");
    v.field("ratio_clip_max", eps_high, "eps_high: the ratio is clipped above at 1 + eps_high");
    v.field("ratio_clip_c", ratio_clip_c, "dual clip: for A < 0 the loss is at most -A c; 0 = off, else > 1");
    v.field("reference_policy_kl_penalty", reference_policy_kl_penalty, "beta, weight of the KL to the reference");
    v.field("reference_policy_kl_type", reference_policy_kl_type, "k1 | k2 | k3 (Schulman)");
    v.field("kl_input_clamp_value", kl_input_clamp_value, "clamp of lp_ref - lp before the KL estimator; 0 = off");
    v.field("kl_output_clamp_value", kl_output_clamp_value, "clamp of the per-token KL; 0 = off");
    v.field("use_on_policy_kl_approximation", use_on_policy_kl_approximation,
            "weight the KL by exp(lp - lp_gen)");
    v.field("token_level_loss", token_level_loss, "true: divide by global tokens; false: per-sequence means");
    v.field("use_importance_sampling_correction", use_importance_sampling_correction,
            "multiply the loss by exp(lp_old - lp_gen)");
    v.field("truncated_importance_sampling_type", truncated_importance_sampling_type, "'' | tis | icepop");
    v.field("truncated_importance_sampling_ratio", truncated_importance_sampling_ratio,
            "tis cap / icepop upper bound");
    v.field("truncated_importance_sampling_ratio_min", truncated_importance_sampling_ratio_min,
            "icepop lower bound");
    v.field("sequence_level_importance_ratios", sequence_level_importance_ratios,
            "GSPO: one ratio per sequence (needs token_level_loss false)");
  }
};

struct dpo_config {
  double reference_policy_kl_penalty = 0.05;  // beta, > 0
  std::string preference_loss = "sigmoid";    // "sigmoid" (DPO) | "ipo"
  double preference_loss_weight = 1.0;
  double sft_loss_weight = 0.0;               // w_sft: NLL of the chosen response
  // r = sum_t (lp - lp_ref) over response tokens, divided by their number when true.
  bool preference_average_log_probs = false;
  // The SFT term per pair: -sum_t lp_chosen, divided by the chosen length when true
  // (a token mean per chosen response; NeMo's default follows
  // preference_average_log_probs).
  bool sft_average_log_probs = true;

  // Throws input_error for beta <= 0, an unknown preference_loss, negative weights.
  void validate() const;

  template <class V>
  void describe(V& v) {
    v.field("reference_policy_kl_penalty", reference_policy_kl_penalty, "beta, > 0");
    v.field("preference_loss", preference_loss, "sigmoid (DPO) | ipo");
    v.field("preference_loss_weight", preference_loss_weight, "weight of the preference term");
    v.field("sft_loss_weight", sft_loss_weight, "weight of the NLL of the chosen response");
    v.field("preference_average_log_probs", preference_average_log_probs, "average r over the response tokens");
    v.field("sft_average_log_probs", sft_average_log_probs, "average the SFT NLL over the chosen tokens");
  }
};

struct distillation_config {
  std::string kl_type = "mixed";  // "forward" | "reverse" | "mixed"
  double mixed_kl_weight = 0.5;   // lambda in [0, 1]: mixed = lambda fwd + (1 - lambda) rev
  std::int64_t topk_logits_k = 64;

  // Throws input_error for an unknown kl_type, lambda outside [0, 1], k < 1.
  void validate() const;
  // Also rejects k > vocab_size.
  void validate(std::int64_t vocab_size) const;

  template <class V>
  void describe(V& v) {
    v.field("kl_type", kl_type, "forward | reverse | mixed");
    v.field("mixed_kl_weight", mixed_kl_weight, "lambda: mixed = lambda forward + (1 - lambda) reverse");
    v.field("topk_logits_k", topk_logits_k, "teacher logits kept per position");
  }
};

// Picks one of the above by name, for configs.
struct advantage_config {
  // "leave_one_out" (NeMo RL default) | "rloo" (leave-one-out without std) |
  // "group_std" (GRPO paper) | "group_mean" (Dr. GRPO)
  std::string estimator = "leave_one_out";
  double std_epsilon = 1e-6;
  bool unbiased_std = true;  // group_std only

  // Throws input_error for an unknown estimator or a negative epsilon.
  void validate() const;

  template <class V>
  void describe(V& v) {
    v.field("estimator", estimator, "leave_one_out | rloo | group_std | group_mean");
    v.field("std_epsilon", std_epsilon, "added to the std before dividing");
    v.field("unbiased_std", unbiased_std, "group_std: divide the variance by G - 1 (true) or G");
  }
};

// The `trainer:` section of an experiment.
struct trainer_section {
  double lr = 1e-6;
  double weight_decay = 0.01;
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-8;
  double max_grad_norm = 1.0;          // 0: no clipping (the norm is still reported)
  std::int64_t microbatch_size = 4;
  // > 0: dynamic batching (NeMo RL's dynamic_batching.train_mb_tokens): rows sorted by
  // length fill microbatches of at most this many padded tokens; microbatch_size is then
  // not used. 0: microbatch_size rows at a time, in the batch's order.
  std::int64_t microbatch_tokens = 0;
  std::string lr_schedule = "constant";  // constant | linear_warmup | cosine
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;        // 0: unknown; cosine needs it
  double min_lr = 0.0;                 // cosine: the lr it decays to
  std::int64_t max_consecutive_nonfinite = 3;
  std::int64_t seed = 0;               // the trainer's own generator (trainer::generator)

  template <class V>
  void describe(V& v) {
    v.field("lr", lr, "AdamW peak learning rate", at_least(0.0));
    v.field("weight_decay", weight_decay, "AdamW decoupled weight decay", at_least(0.0));
    v.field("betas", betas, "AdamW (beta1, beta2), each in [0, 1)", betas_check{});
    v.field("eps", eps, "AdamW epsilon", greater_than(0.0));
    v.field("max_grad_norm", max_grad_norm, "clip the global gradient norm to this; 0 turns clipping off",
            at_least(0.0));
    v.field("microbatch_size", microbatch_size, "sequences per forward/backward pass (gradients accumulate)",
            at_least<std::int64_t>(1));
    v.field("microbatch_tokens", microbatch_tokens,
            "dynamic batching: sort rows by length and fill each microbatch up to this many tokens (rows x its "
            "longest row; a longer row goes alone); 0 = microbatch_size rows in order",
            at_least<std::int64_t>(0));
    v.field("lr_schedule", lr_schedule, "learning-rate schedule", one_of{"constant", "linear_warmup", "cosine"});
    v.field("warmup_steps", warmup_steps, "linear_warmup, cosine: steps of linear warmup from lr/warmup_steps to lr",
            at_least<std::int64_t>(0));
    v.field("total_steps", total_steps, "cosine: steps of the whole run (warmup included); 0 = unknown",
            at_least<std::int64_t>(0));
    v.field("min_lr", min_lr, "cosine: learning rate at total_steps", at_least(0.0));
    v.field("max_consecutive_nonfinite", max_consecutive_nonfinite,
            "skipped steps (NaN/inf loss or gradients) in a row before training stops with an error",
            at_least<std::int64_t>(1));
    v.field("seed", seed, "seed of the trainer's own random generator", at_least<std::int64_t>(0));
  }

  // Throws input_error naming `path` ("trainer") for settings that conflict with each
  // other, with a sentence saying how to fix them. Field-level checks are in describe().
  void validate(const std::string& path = "trainer") const;

  // Inline: the `troupe` binary checks configs without the policies library.
  struct betas_check {
    std::optional<std::string> operator()(const std::vector<double>& b) const {
      if (b.size() != 2) return "expected two values [beta1, beta2], got " + std::to_string(b.size());
      for (double x : b)
        if (!(x >= 0.0 && x < 1.0)) return "each beta must be in [0, 1), got " + format_double(x);
      return std::nullopt;
    }
  };
};

}  // namespace troupe
