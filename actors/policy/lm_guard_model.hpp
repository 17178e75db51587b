// A causal LM as the model that rails ask (guardrails/model_interfaces.hpp): it scores
// text for the perplexity (jailbreak) rail and answers the self-check prompt, greedily
// and briefly. `troupe chat` backs its rails with the chat model this way, and a GRPO
// run puts one behind a guard-model actor (actors/guard_model_actor.hpp). Torch side.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "guardrails/model_interfaces.hpp"
#include "guardrails/rail.hpp"
#include "policies/causal_lm.hpp"
#include "policies/generation.hpp"
#include "policies/model_config.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe {

// Rails call from threads of their own (they enforce their timeouts, and abandon a call
// past it); one mutex keeps the model to one call at a time.
class lm_guard_model final : public logprob_scorer, public guard_model {
 public:
  lm_guard_model(causal_lm model, std::shared_ptr<const tokenizer> tok);

  // Per-token logprobs of BOS + text (natural log), one per token after the first.
  std::vector<double> token_logprobs(const std::string& text) override;
  // The first few greedy tokens after BOS + prompt, as text.
  std::string answer(const std::string& prompt) override;
  // Any other generation (the chat's own), under the same lock: a rail call abandoned
  // past its timeout may still be running.
  generation_result generate(const generation_request& req);

 private:
  causal_lm model_;
  std::shared_ptr<const tokenizer> tok_;
  generation_engine engine_;
  std::mutex mu_;
};

// The guard model of a training run whose rails file has rails that ask one (else an
// invalid handle): guardrails.model (a Hugging Face or troupe checkpoint directory, in
// the policy's dtype and device; the policy's tokenizer when the directory has no
// tokenizer.json), or a frozen copy of `policy` as it is now. Throws input_error for a
// model directory that cannot be loaded or whose vocabulary is not the tokenizer's.
caf::actor spawn_training_guard_model(caf::actor_system& sys, const guardrails_section& g, const policy_section& p,
                                      causal_lm& policy, std::shared_ptr<const tokenizer> policy_tok);

}  // namespace troupe
