// From text examples (environments/datasets.hpp) to the token rows a trainer learns
// from: tokenization with the policy's chat format, the loss mask that leaves prompt
// tokens out, and the two layouts of a batch, padded or packed. Torch-free, so the
// layouts are tested (and travel in actor messages) as plain vectors.
//
// Padding: one example per row; rows have their own lengths (the trainer right-pads
// them to the longest).
// Packing: several examples per row, up to max_length tokens, placed first-fit in
// order. `segments` says which example each token belongs to, so that attention stays
// inside an example and positions restart at 0 in each (causal_lm's segment_ids):
// a packed row computes exactly what its examples compute alone, with fewer pad tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policies/tokenizers/chat_template.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe {

// A prompt and a response as ids: prompt = [bos] + prompt text (when the tokenizer has
// a BOS), response = response text + [eos] (when it has an EOS the text does not end
// with already).
struct tokenized_example {
  std::vector<std::int32_t> prompt;
  std::vector<std::int32_t> response;
  std::size_t size() const { return prompt.size() + response.size(); }
};

// How examples become ids.
struct tokenize_options {
  chat_format format = chat_format::plain;  // applied to chat examples ("messages")
  std::int64_t max_length = 0;              // prompt + response tokens at most; 0 = no limit
};

// Tokenizes one example. A chat example's prompt is format_chat(messages, generation
// prompt) and its response is what the full formatted conversation adds after it (the
// assistant's end-of-turn marker included); a plain example's prompt is its text as is.
// The tokenizer's BOS goes in front and its EOS at the end, except in a chat example
// of a real chat format (chatml, llama3), whose template writes its own special tokens
// (llama3's <|begin_of_text|>, the end-of-turn markers) as the model was trained with.
// A response that does not fit into max_length is cut at its end (`truncated` says so);
// a prompt that leaves no room for one response token is an input_error naming
// `source`, as is an empty response.
struct tokenize_result {
  tokenized_example example;
  bool truncated = false;
};
tokenize_result tokenize_example(const tokenizer& tok, const tokenize_options& opts,
                                 const std::vector<chat_message>& prompt, bool chat, const std::string& response,
                                 const std::string& source);

// A batch laid out in rows.
//   ids[r]        the tokens of row r
//   loss_mask[r]  1 where the token is trained (a response token), 0 elsewhere
//   segments[r]   which example (1, 2, ...) of the row each token belongs to; empty
//                 for a padded batch, where each row is one example
struct token_rows {
  std::vector<std::vector<std::int32_t>> ids;
  std::vector<std::vector<std::uint8_t>> loss_mask;
  std::vector<std::vector<std::int32_t>> segments;
  bool packed() const { return !segments.empty(); }
  std::int64_t tokens() const;  // real tokens in all rows
};

// Preference pairs for DPO: row 2i is prompt i + chosen i, row 2i + 1 prompt i +
// rejected i (padded layout), so that a microbatch of an even number of rows holds
// whole pairs.
struct preference_tokens {
  tokenized_example chosen;    // prompt + chosen response
  tokenized_example rejected;  // the same prompt + rejected response
};
token_rows pair_examples(const std::vector<preference_tokens>& pairs);

// One example per row.
token_rows pad_examples(const std::vector<tokenized_example>& examples);
// Examples packed first-fit into rows of at most `max_length` tokens (> 0). An example
// longer than max_length is an input_error (tokenize_example truncates them).
token_rows pack_examples(const std::vector<tokenized_example>& examples, std::int64_t max_length);

}  // namespace troupe
