// Byte-level BPE read from a Hugging Face tokenizer.json (GPT-2, Llama 3 and Qwen2
// styles), giving the same ids as Hugging Face tokenizers.
//
// What is read, and what each part means here:
// - model: type "BPE" with vocab (token -> id) and merges ("a b" strings or ["a", "b"]
//   pairs); ignore_merges (a pre-token found whole in the vocab is one token);
//   unk_token, fuse_unk and byte_fallback. dropout, continuing_subword_prefix and
//   end_of_word_suffix are rejected: byte-level models do not use them.
// - added_tokens: split out of the text before anything else, leftmost then longest
//   first, honouring special, lstrip, rstrip, single_word and normalized (a normalized
//   token is matched after the normaliser runs, as Hugging Face does). With
//   parse_special false, special tokens are plain text; non-special added tokens are
//   still matched.
// - normalizer: null, NFC, or a Sequence of those (Qwen2 uses NFC).
// - pre_tokenizer: ByteLevel (add_prefix_space, use_regex: the GPT-2 pattern), or a
//   Sequence of Split (Regex or String pattern, behavior Isolated or Removed, invert
//   false) ending in one ByteLevel.
// - decoder: ByteLevel. post_processor is ignored: encode() never adds BOS/EOS.
//
// Split patterns are Oniguruma regexes in the file; troupe runs them with RE2, which is
// linear-time but has no lookaround. Patterns are translated (bpe_tokenizer.cpp):
// - The GPT-2/Llama 3/Qwen2 patterns end in `\s+(?!\S)|\s+`. That tail is removed and
//   applied by hand after the rest fails to match: a whitespace run followed by a
//   non-space character gives all but its last character when it is longer than one,
//   otherwise all of it. This is exactly what backtracking does for that tail.
// - `\s`, `\d`, `\w` mean their Unicode classes in Oniguruma but ASCII in RE2; they are
//   spelled out as Unicode classes (`\s` = the White_Space property).
// - Any other lookaround, `\b`/`\B`, nested classes or `\S`/`\W`/`\D` inside a class are
//   rejected with an input_error, as is anything RE2 cannot compile.
//
// Text that is not valid UTF-8 is repaired first (U+FFFD for each bad subsequence).
// encode() and decode() are safe to call from several threads at once.
#pragma once

#include <memory>
#include <string>

#include "policies/tokenizers/tokenizer.hpp"

namespace troupe {

// Loads a tokenizer from the text of a tokenizer.json. `source_name` names the file in
// errors ("<source_name>: model.merges[12]: ...").
std::unique_ptr<tokenizer> load_bpe_tokenizer_from_string(const std::string& json_text,
                                                          const std::string& source_name);

// Translates an Oniguruma split pattern to RE2 syntax (see above). `has_whitespace_tail`
// is set when the trailing `\s+(?!\S)|\s+` was removed. Throws input_error (the text
// names what is unsupported, without the file) on a pattern it cannot run faithfully.
std::string translate_split_pattern(const std::string& pattern, bool& has_whitespace_tail);

}  // namespace troupe
