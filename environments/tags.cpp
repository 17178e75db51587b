#include "environments/tags.hpp"

namespace troupe {

namespace {
std::string open_of(std::string_view tag) { return "<" + std::string(tag) + ">"; }
std::string close_of(std::string_view tag) { return "</" + std::string(tag) + ">"; }
}  // namespace

std::optional<tag_span> first_tag(std::string_view text, std::string_view tag) {
  const std::string open = open_of(tag), close = close_of(tag);
  const auto o = text.find(open);
  if (o == std::string_view::npos) return std::nullopt;
  tag_span t;
  t.open = o;
  const auto start = o + open.size(), c = text.find(close, start);
  t.closed = c != std::string_view::npos;
  t.content = std::string(text.substr(start, t.closed ? c - start : std::string_view::npos));
  return t;
}

std::optional<tag_span> last_closed_tag(std::string_view text, std::string_view tag) {
  const std::string open = open_of(tag), close = close_of(tag);
  const auto c = text.rfind(close);
  if (c == std::string_view::npos) return std::nullopt;
  const auto o = text.rfind(open, c);
  if (o == std::string_view::npos) return std::nullopt;
  tag_span t;
  t.open = o;
  t.closed = true;
  t.content = std::string(text.substr(o + open.size(), c - o - open.size()));
  return t;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace troupe
