#include "policies/generation.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace troupe {

const char* to_string(finish_reason r) {
  switch (r) {
    case finish_reason::stop_token: return "stop_token";
    case finish_reason::stop_string: return "stop_string";
    case finish_reason::length: return "length";
  }
  return "?";
}

const char* to_string(logprob_source s) { return s == logprob_source::model ? "model" : "sampling"; }

namespace {

// The distribution one request samples from: softmax(logits / T), then top-k, then
// top-p (transformers' order), renormalized. logits (V) float32 -> probs (V).
torch::Tensor sampling_probs(const torch::Tensor& logits, const sampling_params& p) {
  auto probs = torch::softmax(logits / p.temperature, -1);
  if (p.top_k > 0 && p.top_k < probs.size(0)) {
    auto kth = std::get<0>(probs.topk(p.top_k)).index({p.top_k - 1});
    probs = torch::where(probs >= kth, probs, torch::zeros_like(probs));
  }
  if (p.top_p < 1.0) {
    auto [sorted, order] = probs.sort(/*dim=*/-1, /*descending=*/true);
    auto mass_before = sorted.cumsum(-1) - sorted;  // probability of strictly more likely tokens
    auto keep_sorted = mass_before < p.top_p;       // the first token is always kept
    auto keep = torch::zeros_like(keep_sorted).scatter(-1, order, keep_sorted);
    probs = torch::where(keep, probs, torch::zeros_like(probs));
  }
  return probs / probs.sum();
}

void validate(const generation_request& r, std::size_t index, std::int64_t vocab, std::int64_t max_positions,
              bool have_tokenizer) {
  const std::string where = "generation request " + std::to_string(index) + ": ";
  if (r.prompt.empty()) throw input_error(where + "empty prompt");
  for (auto t : r.prompt)
    if (t < 0 || t >= vocab)
      throw input_error(where + "token id " + std::to_string(t) + " outside the vocabulary [0, " + std::to_string(vocab) + ")");
  const auto& p = r.params;
  if (p.max_new_tokens < 1) throw input_error(where + "max_new_tokens must be >= 1");
  if (static_cast<std::int64_t>(r.prompt.size()) + p.max_new_tokens > max_positions)
    throw input_error(where + "prompt (" + std::to_string(r.prompt.size()) + " tokens) + max_new_tokens (" +
                      std::to_string(p.max_new_tokens) + ") exceed max_position_embeddings " + std::to_string(max_positions));
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) throw input_error(where + "temperature must be >= 0");
  if (p.top_k < 0) throw input_error(where + "top_k must be >= 0");
  if (!(p.top_p > 0 && p.top_p <= 1)) throw input_error(where + "top_p must be in (0, 1]");
  if (!p.stop_strings.empty() && !have_tokenizer) throw input_error(where + "stop strings need a tokenizer");
  for (const auto& s : p.stop_strings)
    if (s.empty()) throw input_error(where + "empty stop string");
}

}  // namespace

generation_engine::generation_engine(causal_lm model, const tokenizer* tok, generation_options opts)
  : model_(std::move(model)), tok_(tok), opts_(opts) {
  for (auto id : model_->config().eos_token_ids) eos_.push_back(static_cast<token_id>(id));
  if (tok_ != nullptr && tok_->eos_id() && std::find(eos_.begin(), eos_.end(), *tok_->eos_id()) == eos_.end())
    eos_.push_back(*tok_->eos_id());
}

generation_engine::picked generation_engine::pick_token(const torch::Tensor& row /* (V) */, const sampling_params& p,
                                                        at::Generator& gen) const {
  picked out;
  if (p.temperature == 0.0) {
    out.token = row.argmax().item<std::int64_t>();
  } else {
    auto probs = sampling_probs(row, p);
    out.token = torch::multinomial(probs, 1, false, gen).item<std::int64_t>();
    out.sampled_lp = std::log(probs[out.token].item<float>());
  }
  const double t_eff = p.temperature == 0.0 ? 1.0 : p.temperature;
  out.model_lp = torch::log_softmax(row / t_eff, -1)[out.token].item<float>();
  return out;
}

bool generation_engine::finished(generation_result& res, const sampling_params& p) const {
  const auto id = res.tokens.back();
  const bool eos = !p.ignore_eos && std::find(eos_.begin(), eos_.end(), id) != eos_.end();
  const bool stop_id = std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), id) != p.stop_token_ids.end();
  bool done = false;
  if (eos || stop_id) {
    res.finish = finish_reason::stop_token;
    done = true;
  } else if (!p.stop_strings.empty()) {
    const auto text = tok_->decode(res.tokens);
    for (const auto& s : p.stop_strings)
      if (text.find(s) != std::string::npos) {
        res.finish = finish_reason::stop_string;
        done = true;
      }
  }
  if (!done && static_cast<std::int64_t>(res.tokens.size()) >= p.max_new_tokens) {
    res.finish = finish_reason::length;
    done = true;
  }
  return done;
}

std::vector<generation_result> generation_engine::generate(const std::vector<generation_request>& batch) {
  if (batch.empty()) return {};
  const auto& cfg = model_->config();
  for (std::size_t i = 0; i < batch.size(); ++i)
    validate(batch[i], i, cfg.vocab_size, cfg.max_position_embeddings, tok_ != nullptr);

  torch::NoGradGuard no_grad;
  const auto B = static_cast<std::int64_t>(batch.size());
  std::int64_t P = 0, max_new = 0;
  for (const auto& r : batch) {
    P = std::max<std::int64_t>(P, static_cast<std::int64_t>(r.prompt.size()));
    max_new = std::max(max_new, r.params.max_new_tokens);
  }
  const auto device = model_->device();
  const auto long_opts = torch::TensorOptions().dtype(torch::kInt64);

  // Left-padded prompts (B, P) and which slots hold real tokens (B, P + max_new).
  auto ids = torch::zeros({B, P + max_new}, long_opts);
  auto key_mask = torch::zeros({B, P + max_new}, torch::kBool);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& prompt = batch[static_cast<std::size_t>(b)].prompt;
    const auto pad = P - static_cast<std::int64_t>(prompt.size());
    for (std::size_t t = 0; t < prompt.size(); ++t) ids[b][pad + static_cast<std::int64_t>(t)] = prompt[t];
    key_mask.index_put_({b, torch::indexing::Slice(pad, P)}, true);
  }
  ids = ids.to(device);
  key_mask = key_mask.to(device);

  std::vector<at::Generator> gens;
  for (const auto& r : batch) gens.push_back(at::make_generator<at::CPUGeneratorImpl>(r.seed));
  std::vector<generation_result> results(batch.size());
  std::vector<bool> done(batch.size(), false);
  for (auto& r : results) r.logprobs_from = opts_.logprobs;

  // Next-token logits (B, V) in float32 for the sequences so far (length `len`).
  kv_cache cache;
  auto next_logits = [&](std::int64_t len, std::int64_t new_tokens) {
    torch::Tensor hidden;
    if (!opts_.use_cache) {
      hidden = model_->hidden_states(ids.narrow(1, 0, len), key_mask.narrow(1, 0, len)).select(1, len - 1);
    } else {
      auto positions = (key_mask.narrow(1, 0, len).to(torch::kInt64).cumsum(1) - 1).clamp_min(0);
      hidden = model_->forward_cached(ids.narrow(1, len - new_tokens, new_tokens),
                                      positions.narrow(1, len - new_tokens, new_tokens), key_mask.narrow(1, 0, len), cache)
                 .select(1, new_tokens - 1);
    }
    return model_->logits(hidden).to(torch::kFloat32).cpu();  // (B, V)
  };
  if (opts_.use_cache) cache = model_->make_cache(B, P + max_new);
  auto logits = next_logits(P, P);

  for (std::int64_t step = 0; step < max_new; ++step) {
    std::vector<std::int64_t> chosen(static_cast<std::size_t>(B), 0);
    for (std::int64_t b = 0; b < B; ++b) {
      const auto i = static_cast<std::size_t>(b);
      if (done[i]) continue;
      const auto& p = batch[i].params;
      const auto pick = pick_token(logits[b], p, gens[i]);
      auto& res = results[i];
      res.tokens.push_back(static_cast<token_id>(pick.token));
      res.logprobs.push_back(opts_.logprobs == logprob_source::model ? pick.model_lp : pick.sampled_lp);
      chosen[i] = pick.token;
      done[i] = finished(res, p);
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    // Append this step's tokens; finished rows get a masked filler.
    const auto slot = P + step;
    auto col = torch::tensor(chosen, long_opts).to(device);
    ids.select(1, slot).copy_(col);
    std::vector<std::uint8_t> live(static_cast<std::size_t>(B));
    for (std::size_t i = 0; i < done.size(); ++i) live[i] = done[i] ? 0 : 1;
    key_mask.select(1, slot).copy_(torch::tensor(live, torch::kUInt8).to(torch::kBool).to(device));
    logits = next_logits(slot + 1, 1);
  }
  if (tok_ != nullptr)
    for (auto& r : results) r.text = tok_->decode(r.tokens);
  return results;
}

std::vector<std::vector<float>> score_logprobs(causal_lm& model, const std::vector<score_request>& batch,
                                               double temperature) {
  if (batch.empty()) return {};
  if (!(temperature > 0)) throw input_error("score: temperature must be > 0");
  const auto& cfg = model->config();
  std::int64_t T = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& r = batch[i];
    const auto n = static_cast<std::int64_t>(r.tokens.size());
    if (r.response_start < 1 || r.response_start > n)
      throw input_error("score request " + std::to_string(i) + ": response_start " + std::to_string(r.response_start) +
                        " outside [1, " + std::to_string(n) + "]");
    if (n > cfg.max_position_embeddings)
      throw input_error("score request " + std::to_string(i) + ": " + std::to_string(n) +
                        " tokens exceed max_position_embeddings " + std::to_string(cfg.max_position_embeddings));
    for (auto t : r.tokens)
      if (t < 0 || t >= cfg.vocab_size)
        throw input_error("score request " + std::to_string(i) + ": token id " + std::to_string(t) + " outside the vocabulary");
    T = std::max(T, n);
  }
  torch::NoGradGuard no_grad;
  const auto B = static_cast<std::int64_t>(batch.size());
  auto ids = torch::zeros({B, T}, torch::kInt64);
  auto mask = torch::zeros({B, T}, torch::kInt64);
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& toks = batch[static_cast<std::size_t>(b)].tokens;
    for (std::size_t t = 0; t < toks.size(); ++t) ids[b][static_cast<std::int64_t>(t)] = toks[t];
    mask.index_put_({b, torch::indexing::Slice(0, static_cast<std::int64_t>(toks.size()))}, 1);
  }
  auto hidden = model->hidden_states(ids.to(model->device()), mask.to(model->device()));  // (B, T, H)
  std::vector<std::vector<float>> out(batch.size());
  for (std::int64_t b = 0; b < B; ++b) {
    const auto& r = batch[static_cast<std::size_t>(b)];
    const auto n = static_cast<std::int64_t>(r.tokens.size());
    // Position t-1 predicts token t: one sequence's logits at a time bounds memory to (T, V).
    auto h = hidden[b].narrow(0, r.response_start - 1, n - r.response_start);             // (R, H)
    auto lp = torch::log_softmax(model->logits(h).to(torch::kFloat32) / temperature, -1);  // (R, V)
    auto targets = ids[b].narrow(0, r.response_start, n - r.response_start).to(lp.device());
    auto picked = lp.gather(1, targets.unsqueeze(1)).squeeze(1).cpu().contiguous();        // (R)
    out[static_cast<std::size_t>(b)].assign(picked.data_ptr<float>(), picked.data_ptr<float>() + picked.numel());
  }
  return out;
}

}  // namespace troupe
