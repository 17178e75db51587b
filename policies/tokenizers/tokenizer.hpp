// Tokenizers: text <-> token ids. Two kinds exist: byte-level BPE loaded from a Hugging
// Face tokenizer.json (GPT-2, Llama 3 and Qwen2 styles) and a character tokenizer for
// tiny tasks trained from scratch. Both sit behind this interface, so generation,
// datasets and chat formatting never care which one they have.
//
// Every loader validates what it reads: an error is an input_error naming the file and
// the JSON path of what is wrong ("tokenizer.json: model.merges[12]: ...").
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace troupe {

using token_id = std::int32_t;

class tokenizer {
 public:
  virtual ~tokenizer() = default;

  // Encodes `text`. Special tokens written literally in the text (e.g. "<|im_end|>")
  // are recognised as their single ids when `parse_special` is true, and encoded as
  // plain text otherwise. No BOS is prepended (callers that want it add bos_id()).
  virtual std::vector<token_id> encode(const std::string& text, bool parse_special = true) const = 0;

  // Decodes ids to text. Special tokens are rendered as their text unless
  // `skip_special`. Invalid UTF-8 produced by a partial byte sequence is replaced by
  // U+FFFD, as Hugging Face tokenizers does. Ids that name no token are skipped (as
  // Hugging Face does: models often have more embedding rows than tokens).
  virtual std::string decode(const std::vector<token_id>& ids, bool skip_special = false) const = 0;

  // Number of ids, including added tokens (max id + 1).
  virtual std::size_t vocab_size() const = 0;

  // The id of a token's exact text (vocab or added token), if any.
  virtual std::optional<token_id> token_to_id(const std::string& token) const = 0;
  // The token's text as stored in the vocab (for byte-level BPE, the mapped form).
  // Throws input_error for an id that names no token.
  virtual std::string id_to_token(token_id id) const = 0;
  virtual bool is_special(token_id id) const = 0;

  std::optional<token_id> bos_id() const { return bos_; }
  std::optional<token_id> eos_id() const { return eos_; }
  std::optional<token_id> pad_id() const { return pad_; }
  void set_special_ids(std::optional<token_id> bos, std::optional<token_id> eos, std::optional<token_id> pad) {
    bos_ = bos;
    eos_ = eos;
    pad_ = pad;
  }

 private:
  std::optional<token_id> bos_, eos_, pad_;
};

// Loads tokenizer.json from `path` (a file). Throws input_error naming the file.
// (Defined in bpe_tokenizer.cpp, which says what is supported.)
std::unique_ptr<tokenizer> load_bpe_tokenizer(const std::string& path);

// Loads the tokenizer of a Hugging Face model directory: tokenizer.json, with bos/eos/
// pad from tokenizer_config.json (and config.json's ids as a fallback) when present.
// - tokenizer_config.json's bos_token / eos_token / pad_token may be a string, a
//   {"content": ...} object or null; a named token must exist in the tokenizer.
// - config.json's bos_token_id / eos_token_id fill what the former leaves unset;
//   eos_token_id may be a list, whose first entry is taken.
std::unique_ptr<tokenizer> load_tokenizer_dir(const std::string& dir);

// Reads a whole file. Throws input_error naming it when it cannot be read.
std::string read_tokenizer_file(const std::string& path);

// A character tokenizer over `alphabet` (each UTF-8 character one id, in order), with
// special tokens appended after it: ids [0, chars) are characters, then `specials`.
// encode() of a character outside the alphabet throws input_error naming it.
std::unique_ptr<tokenizer> make_char_tokenizer(const std::string& alphabet, const std::vector<std::string>& specials);

}  // namespace troupe
