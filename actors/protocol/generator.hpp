// The generator actor: a policy copy for inference, its KV cache and tokenizer
// (policies/generation.hpp). It samples completions for batches of prompts and swaps
// its weights when the trainer publishes a new version. Runs detached: generation
// blocks its thread for the whole batch.
//
// Protocol:
//   (generate_atom, std::vector<gen_request>) -> std::vector<gen_result>
//       one batch, in request order; each result carries the weight version it was
//       sampled with
//   (weights_atom, weight_update)             -> std::int64_t
//       replaces the weights (between generate calls: messages are handled one at a
//       time) and answers the version now in use
//   (status_atom)                             -> std::int64_t   the weight version
//
// This header does not include torch: the weights travel as an opaque shared snapshot
// (weights/weight_sync.hpp), in process, never through a serializer.
#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "actors/protocol/atoms.hpp"
#include "weights/weight_sync.hpp"

namespace troupe {

struct gen_request {
  std::vector<std::int32_t> prompt;
  std::int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0: greedy
  std::int64_t top_k = 0;
  double top_p = 1.0;
  std::vector<std::string> stop_strings;
  std::uint64_t seed = 0;
};

struct gen_result {
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;  // the model's (log_softmax at the temperature)
  std::string text;
  std::string finish;           // stop_token | stop_string | length
  std::int64_t weight_version = 0;
};

// The protocol above as a type: a request the generator does not answer, or a reply
// read as the wrong type, does not compile. (weights_atom, int64) is the weight link's
// announcement to a generator on a cluster worker (actors/policy/generator_actor.hpp).
using generator_actor = caf::typed_actor<
  caf::replies_to<generate_atom, std::vector<gen_request>>::with<std::vector<gen_result>>,
  caf::replies_to<weights_atom, weight_update>::with<std::int64_t>,
  caf::replies_to<weights_atom, std::int64_t>::with<std::int64_t>,
  caf::replies_to<status_atom>::with<std::int64_t>>;

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gen_request& x) {
  return f(caf::meta::type_name("troupe::gen_request"), x.prompt, x.max_new_tokens, x.temperature, x.top_k, x.top_p,
           x.stop_strings, x.seed);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, gen_result& x) {
  return f(caf::meta::type_name("troupe::gen_result"), x.tokens, x.logprobs, x.text, x.finish, x.weight_version);
}

}  // namespace troupe
