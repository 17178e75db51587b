#include "actors/policy/lm_guard_model.hpp"

#include <filesystem>

#include "actors/guard_model_actor.hpp"
#include "weights/weight_snapshot.hpp"
#include "core/error.hpp"
#include "guardrails/rails_file.hpp"
#include "policies/checkpoint.hpp"

namespace troupe {

lm_guard_model::lm_guard_model(causal_lm model, std::shared_ptr<const tokenizer> tok)
    : model_(std::move(model)), tok_(std::move(tok)), engine_(model_, tok_.get()) {}

std::vector<double> lm_guard_model::token_logprobs(const std::string& text) {
  std::vector<token_id> ids;
  if (tok_->bos_id()) ids.push_back(*tok_->bos_id());
  for (auto id : tok_->encode(text)) ids.push_back(id);
  if (ids.size() < 2) return {};
  std::lock_guard<std::mutex> lock(mu_);
  const auto lp = score_logprobs(model_, {{ids, 1}})[0];
  return {lp.begin(), lp.end()};
}

std::string lm_guard_model::answer(const std::string& prompt) {
  generation_request req;
  req.prompt = tok_->encode(prompt);
  if (tok_->bos_id()) req.prompt.insert(req.prompt.begin(), *tok_->bos_id());
  req.params.max_new_tokens = 4;
  req.params.temperature = 0;
  return generate(req).text;
}

generation_result lm_guard_model::generate(const generation_request& req) {
  std::lock_guard<std::mutex> lock(mu_);
  return engine_.generate({req})[0];
}

caf::actor spawn_training_guard_model(caf::actor_system& sys, const guardrails_section& g, const policy_section& p,
                                      causal_lm& policy, std::shared_ptr<const tokenizer> policy_tok) {
  if (!rails_need_model(g)) return {};
  causal_lm model{nullptr};
  auto tok = std::move(policy_tok);
  if (!g.model.empty()) {
    load_options lo;
    lo.dtype = parse_torch_dtype(p.dtype);
    lo.device = parse_torch_device(p.device);
    model = load_pretrained(g.model, lo);
    // A troupe checkpoint of a small char-level policy has no tokenizer.json: it reads
    // the run's own tokenizer.
    std::error_code ec;
    if (std::filesystem::is_regular_file(std::filesystem::path(g.model) / "tokenizer.json", ec))
      tok = std::shared_ptr<const tokenizer>(load_tokenizer_dir(g.model));
    if (model->config().vocab_size < static_cast<std::int64_t>(tok->vocab_size()))
      throw input_error("guardrails.model: '" + g.model + "' has a vocabulary of " +
                        std::to_string(model->config().vocab_size) + " ids, its tokenizer " +
                        std::to_string(tok->vocab_size()) + ": not a model for this tokenizer");
  } else {
    // Frozen: the rails judge every step with the same model, whatever the policy
    // learns, and a resumed run judges as the first did.
    model = causal_lm(policy->config());
    const auto w = policy->parameters().front();
    model->to(w.device(), w.scalar_type());
    weight_snapshot(policy).load_into(model);
  }
  model->eval();
  auto lm = std::make_shared<lm_guard_model>(model, tok);
  return spawn_guard_model_actor(sys, lm, lm);
}

}  // namespace troupe
