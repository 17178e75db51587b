// Datasets of text examples for the offline experiments (SFT, DPO): read from JSON
// Lines files, or generated from the arithmetic task generator. Torch-free: the
// experiments tokenize and lay the examples out afterwards (algorithms/sft_data.hpp).
//
// File formats, one JSON object per line (blank lines are skipped):
//   SFT          {"prompt": "12+34=", "response": "46"}
//                {"messages": [{"role": "user", "content": "..."},
//                              {"role": "assistant", "content": "..."}]}
//                In a chat example the last message is the response and must be the
//                assistant's; the messages before it are the prompt.
//   preferences  {"prompt": "12+34=", "chosen": "46", "rejected": "47"}
//                (a chat prompt may be given as "messages" instead of "prompt").
// Every problem is an input_error that names `file:line` and what is wrong (not JSON,
// a missing or non-string field, an unknown role, an empty response, ...). Unknown
// extra fields are ignored, as TRL and NeMo RL ignore them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "environments/arithmetic.hpp"
#include "policies/tokenizers/chat_template.hpp"  // chat_message only: a plain struct, no code

namespace troupe {

// One supervised example: the prompt as chat messages (a plain prompt is one user
// message) and the response the model learns to write after it.
struct sft_example {
  std::string source;                 // "file:line" (or "arithmetic/train/7") for errors
  std::vector<chat_message> prompt;   // at least one message
  std::string response;               // not empty
  bool chat = false;                  // given as "messages": format it with the chat template
};

// One preference pair: two responses to the same prompt, the chosen one preferred.
struct preference_example {
  std::string source;
  std::vector<chat_message> prompt;
  std::string chosen;    // not empty
  std::string rejected;  // not empty
  bool chat = false;
};

// Reads a whole file. input_error naming the file when it cannot be opened or holds no
// example, and file:line for a bad line.
std::vector<sft_example> read_sft_jsonl(const std::string& path);
std::vector<preference_example> read_preference_jsonl(const std::string& path);

// Examples made from the arithmetic task generator (environments/arithmetic.hpp): the
// index-th problem of a split as the prompt and its answer followed by "\n" as the
// response. Train and eval splits never share a problem. Deterministic in (opts, seed).
std::vector<sft_example> arithmetic_sft_examples(const arithmetic_options& opts, std::uint64_t seed, split s,
                                                 std::int64_t count);
// The same problems as preference pairs: chosen is the answer, rejected a wrong answer
// (the answer plus a nonzero offset of up to +-9, drawn from the seed), both followed
// by "\n".
std::vector<preference_example> arithmetic_preference_examples(const arithmetic_options& opts, std::uint64_t seed,
                                                               split s, std::int64_t count);

// The held-out part of a file that has no separate eval file: example i is held out
// when a hash of (seed, i) falls in `fraction`, so the split is stable when the file
// grows at its end. Returns the indices of each side, in file order.
struct split_indices {
  std::vector<std::size_t> train;
  std::vector<std::size_t> eval;
};
split_indices split_by_hash(std::size_t count, double fraction, std::uint64_t seed);

}  // namespace troupe
