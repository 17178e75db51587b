// Unicode helpers for the tokenizers: UTF-8 decoding that repairs bad bytes the way
// Hugging Face tokenizers does (Rust's String::from_utf8_lossy), the White_Space
// property, and NFC normalisation.
//
// NFC uses tables generated from Python's unicodedata (policies/tokenizers/unicode_nfc_gen.py ->
// policies/tokenizers/unicode_nfc_tables.cpp; the version is in unicode_tables::unicode_version).
// Hugging Face's Rust normaliser may use a newer Unicode version; the two agree on every
// character assigned in the older one, which covers all text that real models were
// trained on in practice.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe {

// Appends `cp` encoded as UTF-8.
void append_utf8(std::string& out, char32_t cp);

// Decodes one character at `pos`. Returns its code point and advances `pos`; a maximal
// invalid subsequence decodes as U+FFFD (the Unicode "substitution of maximal subparts",
// which Rust's from_utf8_lossy follows).
char32_t next_utf8(std::string_view text, std::size_t& pos);

// `text` with every invalid UTF-8 subsequence replaced by U+FFFD. Returns `text` itself
// (no copy is made by callers that check utf8_is_valid first) when it is valid.
std::string utf8_repair(std::string_view text);
bool utf8_is_valid(std::string_view text);

// The Unicode White_Space property: what Rust's char::is_whitespace and Oniguruma's \s
// (in Unicode mode) mean by whitespace.
bool is_unicode_white_space(char32_t cp);

// Canonical composition (NFC) of valid UTF-8 text.
std::string nfc_normalize(std::string_view text);

namespace unicode_tables {
struct ccc_range {
  char32_t first, last;
  std::uint8_t ccc;
};
struct decomposition {
  char32_t code_point;
  std::uint32_t offset, length;  // into decomposition_data
};
struct composition {
  char32_t first, second, composite;
};
extern const char* const unicode_version;
extern const ccc_range ccc_ranges[];
extern const std::size_t ccc_range_count;
extern const decomposition decompositions[];
extern const std::size_t decomposition_count;
extern const char32_t decomposition_data[];
extern const composition compositions[];
extern const std::size_t composition_count;
}  // namespace unicode_tables

}  // namespace troupe
