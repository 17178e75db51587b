// The objectives of the offline experiments on a trainer (algorithms/trainer.hpp): one
// SFT or DPO optimizer step over a batch of token rows (algorithms/sft_data.hpp), and the
// same losses without gradients on held-out rows. The actor that runs them
// (actors/protocol/trainer.hpp) is a shell over these functions.
//
// SFT is the masked token NLL of losses.hpp's nll_loss, normalized over the response
// tokens of the whole batch: padded and packed layouts of the same examples give the
// same loss and gradients (packed rows keep attention inside each example).
// DPO is losses.hpp's dpo_loss over rows laid out by pair_examples (chosen, rejected,
// chosen, ...), with lp_ref from the trainer's frozen reference model; the trainer's
// microbatch_size must be even so that a microbatch holds whole pairs.
#pragma once

#include <map>
#include <string>

#include "algorithms/sft_data.hpp"
#include "algorithms/trainer.hpp"

namespace troupe {

// Right-pads rows with `pad_id` into a train_batch: response_mask = loss_mask, and a
// per_token "segment_ids" for packed rows. input_error for rows whose lengths disagree
// with their masks, an empty row, or a loss on a row's first token.
train_batch rows_to_batch(const token_rows& rows, std::int64_t pad_id);

// One optimizer step of masked NLL. Metrics: sft/loss (token mean NLL), sft/nll (the
// same mean, accumulated per microbatch), sft/grad_norm, sft/lr, sft/tokens (trained
// tokens), sft/skipped, ... (every train/* metric of trainer::train_step, renamed).
std::map<std::string, double> sft_step(trainer& t, const token_rows& rows, std::int64_t pad_id);

// The NLL of held-out rows, no gradients, microbatched like training. Returns the sum
// and the token count, so callers can merge several calls into one exact mean.
struct nll_sum {
  double sum = 0;
  double tokens = 0;
};
nll_sum sft_eval(trainer& t, const token_rows& rows, std::int64_t pad_id);

// One DPO optimizer step over pair rows (needs a trainer built with a reference).
// Metrics, as dpo/<name>: loss, preference_loss, sft_loss, accuracy (pairs whose chosen
// reward beats the rejected one), reward_margin (beta delta), rewards_chosen,
// rewards_rejected (beta r), logps_chosen, logps_rejected (summed response logprobs of
// the policy, a pair mean), logps_accuracy (pairs whose chosen response is the more
// likely one under the policy alone), grad_norm, lr, skipped.
std::map<std::string, double> dpo_step(trainer& t, const dpo_config& cfg, const token_rows& pairs,
                                       std::int64_t pad_id);

// The same metrics on held-out pairs without gradients, as dpo/eval_<name> (no
// grad_norm, lr or skipped).
std::map<std::string, double> dpo_eval(trainer& t, const dpo_config& cfg, const token_rows& pairs,
                                       std::int64_t pad_id);

// On-policy distillation: rows are prompts followed by the student's own completions
// (pad_examples of them; loss_mask on the completion). The teacher's top-k next-token
// logprobs at each completion position (teacher_topk) are the targets of losses.hpp's
// distillation_loss, token level over the batch. Metrics distill/<name>: loss,
// forward_kl, reverse_kl, grad_norm, lr, skipped.
std::map<std::string, double> distill_step(trainer& t, causal_lm& teacher, const distillation_config& cfg,
                                           const token_rows& rows, std::int64_t pad_id);
// The same KLs without gradients, as distill/eval_<name>.
std::map<std::string, double> distill_eval(trainer& t, causal_lm& teacher, const distillation_config& cfg,
                                           const token_rows& rows, std::int64_t pad_id);

}  // namespace troupe
