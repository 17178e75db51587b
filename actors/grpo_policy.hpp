// The GRPO experiment's policy and trainer options from its config, in one place: the
// coordinator (actors/grpo.cpp) and a remote data-parallel trainer rank
// (actors/trainer_rank.cpp) build them alike.
#pragma once

#include <cstdint>
#include <memory>

#include "actors/experiment_config.hpp"
#include "actors/trainer_actor_spawn.hpp"
#include "policies/causal_lm.hpp"
#include "policies/chat_template.hpp"
#include "policies/tokenizer.hpp"

namespace troupe {

struct grpo_policy {
  causal_lm policy{nullptr};  // on policy.device in policy.dtype
  std::shared_ptr<const tokenizer> tok;
  chat_format chat = chat_format::plain;
  std::int64_t pad_id = 0;
};

// policy.path empty: a small model from the config (weights from policy.init_seed) over
// the char tokenizer of tokenizer.alphabet. Otherwise the Hugging Face directory's
// weights, tokenizer.json and chat format (policy.chat_format unless "auto").
grpo_policy build_grpo_policy(const experiment_config& cfg);

// The trainer actor's options: the trainer section for GRPO, the sft section's lr and
// microbatches (constant schedule) for the warm start, the loss, temperature and fp8
// weight sync. data_parallel stays off.
trainer_actor_options grpo_trainer_options(const experiment_config& cfg, std::int64_t pad_id);

}  // namespace troupe
