#include "guardrails/text_match.hpp"

#include <cctype>

#include "core/config_binding.hpp"

namespace troupe {

std::unique_ptr<RE2> compile_regex(const std::string& pattern, bool case_sensitive, const config_node& n,
                                   const std::string& path) {
  RE2::Options o;
  o.set_log_errors(false);  // the error goes into our message, not onto stderr
  o.set_case_sensitive(case_sensitive);
  auto re = std::make_unique<RE2>(pattern, o);
  if (!re->ok()) detail::fail(n, path, "invalid regex '" + pattern + "': " + re->error());
  return re;
}

namespace {
bool is_word(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }
}  // namespace

std::string phrase_pattern(const std::vector<std::string>& phrases, bool whole_words) {
  std::string out;
  for (const auto& p : phrases) {
    std::string alt;
    std::size_t i = 0;
    while (i < p.size()) {
      if (std::isspace(static_cast<unsigned char>(p[i])) != 0) {
        while (i < p.size() && std::isspace(static_cast<unsigned char>(p[i])) != 0) ++i;
        alt += "\\s+";
        continue;
      }
      std::size_t j = i;
      while (j < p.size() && std::isspace(static_cast<unsigned char>(p[j])) == 0) ++j;
      alt += RE2::QuoteMeta(p.substr(i, j - i));
      i = j;
    }
    if (whole_words && !p.empty() && is_word(p.front())) alt = "\\b" + alt;
    if (whole_words && !p.empty() && is_word(p.back())) alt += "\\b";
    out += (out.empty() ? "" : "|") + std::string("(?:") + alt + ")";
  }
  return out;
}

}  // namespace troupe
