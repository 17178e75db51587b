// Finding <tag>...</tag> spans in a policy's text: the action formats of countdown
// (<answer>), the calculator (<tool>, <answer>) and guess-the-number (<guess>). Plain
// substring search, no regex: linear in the text, whatever the policy wrote.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace troupe {

struct tag_span {
  std::size_t open = 0;  // offset of '<' of the opening tag
  std::string content;   // between the tags (to the end of the text when !closed)
  bool closed = false;   // the closing tag follows
};

// The first <tag> in `text` (`tag` without brackets, e.g. "answer").
std::optional<tag_span> first_tag(std::string_view text, std::string_view tag);
// The last complete <tag>...</tag> in `text`: what a model's final answer is taken from
// when it drafts several (as TinyZero does).
std::optional<tag_span> last_closed_tag(std::string_view text, std::string_view tag);

// `s` without leading and trailing ASCII whitespace.
std::string_view trim(std::string_view s);

}  // namespace troupe
