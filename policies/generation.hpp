// Batched generation with a KV cache, and scoring of given tokens.
//
// generate() takes prompts of different lengths, left-pads them into one batch, fills
// a preallocated cache with the prompts (prefill) and then decodes one token per step
// for every unfinished sequence. Each request carries its own seed and sampling
// parameters: the same request and seed give the same tokens whatever else is in the
// batch (sampling draws from a per-request generator, and padding is masked out).
//
// Logprobs: every generated token comes with its logprob. Which distribution it is
// taken from is chosen by logprob_source and reported in each result:
//   model     log_softmax(logits / temperature) over the whole vocabulary: what the
//             trainer's scoring computes for the same tokens and temperature (to 1e-5
//             in fp32), and what importance ratios in the losses need.
//             With temperature 0 (greedy) the temperature is taken as 1.
//   sampling  the distribution actually sampled from, after top-k / top-p filtering
//             and renormalization (0 for greedy picks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policies/causal_lm.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe {

struct sampling_params {
  std::int64_t max_new_tokens = 64;
  double temperature = 1.0;            // 0: greedy
  std::int64_t top_k = 0;              // 0: off
  double top_p = 1.0;                  // 1: off
  std::vector<token_id> stop_token_ids;  // besides the model's EOS
  std::vector<std::string> stop_strings; // needs a tokenizer
  bool ignore_eos = false;
};

struct generation_request {
  std::vector<token_id> prompt;  // not empty
  sampling_params params;
  std::uint64_t seed = 0;
};

enum class finish_reason { stop_token, stop_string, length };
const char* to_string(finish_reason r);

enum class logprob_source { model, sampling };
const char* to_string(logprob_source s);

struct generation_result {
  std::vector<token_id> tokens;   // generated tokens only, including a final stop token
  std::vector<float> logprobs;    // one per token, from `logprobs_from`
  logprob_source logprobs_from = logprob_source::model;
  std::string text;               // decode(tokens) when the engine has a tokenizer
  finish_reason finish = finish_reason::length;
};

struct generation_options {
  logprob_source logprobs = logprob_source::model;
  bool use_cache = true;  // false recomputes the whole sequence each step (for tests)
};

class generation_engine {
 public:
  // `tok` may be null (no text, no stop strings). The model's EOS ids (config.json) and
  // the tokenizer's EOS stop generation unless a request sets ignore_eos.
  generation_engine(causal_lm model, const tokenizer* tok, generation_options opts = {});

  // Throws input_error for an empty prompt, a token id outside the vocabulary,
  // prompt + max_new_tokens beyond max_position_embeddings, invalid sampling values, or
  // stop strings without a tokenizer.
  std::vector<generation_result> generate(const std::vector<generation_request>& batch);

  causal_lm& model() { return model_; }

 private:
  // One step of one request: the token drawn from `row` (V) logits, its logprob under
  // the sampling distribution and under the model at the request's temperature.
  struct picked {
    std::int64_t token = 0;
    float sampled_lp = 0.0f;  // 0 for greedy
    float model_lp = 0.0f;
  };
  picked pick_token(const torch::Tensor& row, const sampling_params& p, at::Generator& gen) const;
  // Whether `res` ends with its last token (EOS, a stop id or string, max_new_tokens);
  // sets res.finish when it does.
  bool finished(generation_result& res, const sampling_params& p) const;

  causal_lm model_;
  const tokenizer* tok_;
  generation_options opts_;
  std::vector<token_id> eos_;
};

// Logprobs of given response tokens: for each sequence, the logprob of tokens[i] for
// every i >= response_start, under log_softmax(logits / temperature). One batched,
// masked forward pass (right padding). Used by the trainer, the reference model and
// the teacher.
struct score_request {
  std::vector<token_id> tokens;     // prompt + response
  std::int64_t response_start = 0;  // first scored position, >= 1
};

std::vector<std::vector<float>> score_logprobs(causal_lm& model, const std::vector<score_request>& batch,
                                               double temperature = 1.0);

}  // namespace troupe
