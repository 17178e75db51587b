// The offline trainer actor: owns a policy, its optimizer and (for DPO) the frozen
// reference, and learns from a fixed dataset laid out as token rows
// (algorithms/sft_data.hpp). A shell over algorithms/offline_objectives.hpp, used by the
// sft, dpo and distill experiments (experiments/offline/sft.hpp, experiments/offline/dpo.hpp, experiments/offline/distill.hpp).
// Detached: a step blocks its thread for a while.
//
// The actor is spawned for one objective (offline_trainer_options::objective) and
// answers the same messages for both:
//   (train_atom, token_rows)     -> std::map<std::string, double>
//       One optimizer step. sft: rows are examples (padded or packed), metrics sft/*
//       (loss, grad_norm, lr, tokens). dpo: rows are pairs (chosen, rejected, ...) from
//       pair_examples, metrics dpo/* (loss, accuracy, reward_margin, logps_chosen, ...).
//   (eval_atom, token_rows)      -> std::map<std::string, double>
//       The loss on held-out rows, no gradients. sft: "nll_sum" and "tokens" (merge
//       several answers, then divide); dpo: dpo/eval_* pair means over these rows.
//   distill: rows are prompts + the student's completions; train answers distill/*
//       (loss, forward_kl, reverse_kl, ...), eval distill/eval_*.
//   (weights_atom)               -> weight_update   a snapshot of the policy, versioned
//                                                   by the optimizer step (for a generator)
//   (save_atom, std::string dir) -> bool    trainer::save_checkpoint(dir)
//   (load_atom, std::string reference_dir, std::string dir) -> std::int64_t
//       Resume: trainer::load_checkpoint(dir) (weights, optimizer, RNG, step), after the
//       frozen reference (dpo) takes the weights saved at reference_dir unless that is
//       empty. Answers the restored step.
// Errors: a malformed batch is errc::bad_input; a diverged trainer errc::system_failure.
#pragma once

#include <caf/meta/type_name.hpp>

#include "algorithms/sft_data.hpp"

namespace troupe {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, token_rows& x) {
  return f(caf::meta::type_name("troupe::token_rows"), x.ids, x.loss_mask, x.segments);
}

}  // namespace troupe
