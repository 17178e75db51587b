// The trainer actor (actors/policy/trainer_actor.hpp): owns the policy being trained,
// its optimizer and, where the objective has one, the frozen reference
// (algorithms/trainer.hpp). One actor for every recipe; its objective, chosen at spawn,
// says which of the train messages it answers. Detached: a step blocks its thread for
// seconds.
//
// Protocol, objective grpo:
//   (train_atom, rollout_batch)  -> std::map<std::string, double>
//       One GRPO update: lp_old and lp_ref are computed first, then the clipped
//       policy-gradient loss over microbatches, one optimizer step. Metrics are named
//       train/* (loss, kl, clip fractions, entropy, grad_norm, token_mult_prob_error, ...).
//   (sft_atom, sft_batch)        -> std::map<std::string, double>
//       One warm-start step (masked NLL over the targets, an optimizer of its own):
//       sft/* metrics.
// Protocol, objectives sft, dpo and distill (rows from algorithms/sft_data.hpp):
//   (train_atom, token_rows)     -> std::map<std::string, double>
//       One optimizer step. sft: rows are examples (padded or packed), metrics sft/*
//       (loss, grad_norm, lr, tokens). dpo: rows are pairs (chosen, rejected, ...) from
//       pair_examples, metrics dpo/* (loss, accuracy, reward_margin, logps_chosen, ...).
//       distill: rows are prompts + the student's completions, metrics distill/*
//       (loss, forward_kl, reverse_kl, ...).
//   (eval_atom, token_rows)      -> std::map<std::string, double>
//       The loss on held-out rows, no gradients. sft: "nll_sum" and "tokens" (merge
//       several answers, then divide); dpo: dpo/eval_* pair means; distill:
//       distill/eval_*.
// Every objective:
//   (weights_atom)               -> weight_update     a snapshot of the current policy,
//                                                      versioned by the objective's steps
//                                                      (GRPO's warm start: 0)
//   (save_atom, std::string dir) -> bool              trainer.save_checkpoint(dir)
//   (load_atom, std::string reference_dir, std::string dir) -> std::int64_t
//       Resume: the weights at reference_dir (the policy as the objective started; ""
//       when there is no reference or it is the current policy) become the frozen
//       reference, then trainer.load_checkpoint(dir). Answers the restored step.
// A message of another objective is errc::bad_input, and so is a malformed batch; a
// trainer that diverges (NaN/inf steps in a row) answers errc::system_failure.
#pragma once

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "actors/protocol/atoms.hpp"
#include "algorithms/sft_data.hpp"
#include "weights/weight_sync.hpp"

namespace troupe {

// Completions to learn from. Row i is prompts[i] followed by completions[i].
struct rollout_batch {
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<std::vector<std::int32_t>> completions;
  std::vector<std::vector<float>> gen_logprobs;  // per completion token, from the generator
  std::vector<double> advantages;                // per row
  std::vector<std::int64_t> versions;            // weight version each row was sampled with
  // Multi-turn rows: 1 at the policy's own tokens, 0 at the environment's observations
  // inside the completion (those are not trained on). Empty: every completion token is
  // the policy's.
  std::vector<std::vector<float>> completion_masks;
};

// Supervised examples: learn targets[i] after prompts[i].
struct sft_batch {
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<std::vector<std::int32_t>> targets;
};

using train_metrics = std::map<std::string, double>;

// The protocol above as a type, every objective's messages in one interface: which of
// them an objective answers is decided at spawn, so asking another objective's
// question compiles and is answered with errc::bad_input.
using trainer_actor = caf::typed_actor<
  caf::replies_to<train_atom, rollout_batch>::with<train_metrics>,
  caf::replies_to<sft_atom, sft_batch>::with<train_metrics>,
  caf::replies_to<train_atom, token_rows>::with<train_metrics>,
  caf::replies_to<eval_atom, token_rows>::with<train_metrics>,
  caf::replies_to<weights_atom>::with<weight_update>,
  caf::replies_to<save_atom, std::string>::with<bool>,
  caf::replies_to<load_atom, std::string, std::string>::with<std::int64_t>>;

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rollout_batch& x) {
  return f(caf::meta::type_name("troupe::rollout_batch"), x.prompts, x.completions, x.gen_logprobs, x.advantages,
           x.versions, x.completion_masks);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sft_batch& x) {
  return f(caf::meta::type_name("troupe::sft_batch"), x.prompts, x.targets);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, token_rows& x) {
  return f(caf::meta::type_name("troupe::token_rows"), x.ids, x.loss_mask, x.segments);
}

}  // namespace troupe
