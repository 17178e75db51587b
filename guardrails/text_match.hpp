// RE2 helpers the pattern-based rails share (regex, keywords, topics, PII). RE2 runs in
// time linear in the text, whatever the pattern: user patterns cannot hang a check.
// Internal to guardrails/ (it includes re2).
#pragma once

#include <re2/re2.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_tree.hpp"
#include "guardrails/rail.hpp"

namespace troupe {

// Compiles `pattern`; a bad one is an input_error at `n` naming `path` and RE2's reason.
std::unique_ptr<RE2> compile_regex(const std::string& pattern, bool case_sensitive, const config_node& n,
                                   const std::string& path);

// An RE2 pattern matching any of `phrases` literally; whitespace inside a phrase matches
// any run of whitespace, and with whole_words a phrase that starts (ends) with a word
// character must start (end) at a word boundary. Empty phrases are the caller's error.
std::string phrase_pattern(const std::vector<std::string>& phrases, bool whole_words);

// Calls f(begin, end) for each leftmost non-overlapping match, left to right, until f
// returns false, the text ends, or `stop` is raised.
template <class F>
void for_each_match(const RE2& re, std::string_view text, const stop_flag& stop, F&& f) {
  re2::StringPiece input(text.data(), text.size()), m;
  std::size_t pos = 0;
  while (pos <= text.size() && !stop.load(std::memory_order_relaxed)) {
    if (!re.Match(input, pos, text.size(), RE2::UNANCHORED, &m, 1)) return;
    const auto b = static_cast<std::size_t>(m.data() - text.data()), e = b + m.size();
    if (!f(b, e)) return;
    pos = e > b ? e : e + 1;  // an empty match moves on by one byte
  }
}

}  // namespace troupe
