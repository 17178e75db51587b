#include "core/config_binding.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace troupe {

template <class T>
static std::string num(T v) {
  if constexpr (std::is_floating_point_v<T>) return format_double(v);
  else return std::to_string(v);
}

template <class T>
std::optional<std::string> at_least<T>::operator()(const T& v) const {
  if (v < lo) return "must be >= " + num(lo) + ", got " + num(v);
  return std::nullopt;
}
template <class T>
std::optional<std::string> greater_than<T>::operator()(const T& v) const {
  if (!(v > lo)) return "must be > " + num(lo) + ", got " + num(v);
  return std::nullopt;
}
template <class T>
std::optional<std::string> in_range<T>::operator()(const T& v) const {
  if (v < lo || v > hi) return "must be in [" + num(lo) + ", " + num(hi) + "], got " + num(v);
  return std::nullopt;
}
template struct at_least<int>;
template struct at_least<std::int64_t>;
template struct at_least<double>;
template struct greater_than<int>;
template struct greater_than<std::int64_t>;
template struct greater_than<double>;
template struct in_range<int>;
template struct in_range<std::int64_t>;
template struct in_range<double>;

std::optional<std::string> one_of::operator()(const std::string& v) const {
  if (std::find(choices.begin(), choices.end(), v) != choices.end()) return std::nullopt;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  return "must be one of " + list + ", got '" + v + "'" + suggest(v, choices);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string suggest(std::string_view wrong, const std::vector<std::string>& candidates) {
  if (candidates.empty()) return "";
  const std::string* best = nullptr;
  std::size_t best_d = 0;
  for (const auto& c : candidates) {
    auto d = edit_distance(wrong, c);
    if (best == nullptr || d < best_d) best = &c, best_d = d;
  }
  // Close enough to be a typo: a third of the longer word, at least 2 edits.
  std::size_t limit = std::max<std::size_t>(2, std::max(wrong.size(), best->size()) / 3);
  if (best_d <= limit) return " (did you mean '" + *best + "'?)";
  std::string list;
  for (const auto& c : candidates) list += (list.empty() ? "" : ", ") + c;
  return " (valid keys: " + list + ")";
}

std::string format_double(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  std::string s(buf, res.ptr);
  // Keep a marker that it is a float so the text reads back as one in any YAML tool.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

namespace detail {

std::string describe_node(const config_node& n) {
  switch (n.type) {
    case config_node::kind::null: return "nothing (null)";
    case config_node::kind::scalar: return "'" + n.scalar + "'";
    case config_node::kind::sequence: return "a list";
    case config_node::kind::mapping: return "a mapping";
  }
  return "?";
}

void fail(const config_node& n, const std::string& path, const std::string& what) {
  throw input_error(n.where.to_string() + ": " + path + ": " + what);
}

namespace {
const std::string& scalar_or_fail(const config_node& n, const std::string& path, const char* want) {
  if (n.type != config_node::kind::scalar)
    fail(n, path, std::string("expected ") + want + ", got " + describe_node(n));
  return n.scalar;
}

template <class Int>
Int parse_int(const config_node& n, const std::string& path) {
  const auto& s = scalar_or_fail(n, path, "an integer");
  Int v{};
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec == std::errc::result_out_of_range)
    fail(n, path, "integer '" + s + "' is out of range");
  if (res.ec != std::errc() || res.ptr != s.data() + s.size())
    fail(n, path, "expected an integer, got '" + s + "'");
  return v;
}
}  // namespace

void read_scalar(const config_node& n, const std::string& path, bool& out) {
  const auto& s = scalar_or_fail(n, path, "true or false");
  if (s == "true" || s == "True" || s == "yes" || s == "on") out = true;
  else if (s == "false" || s == "False" || s == "no" || s == "off") out = false;
  else fail(n, path, "expected true or false, got '" + s + "'");
}

void read_scalar(const config_node& n, const std::string& path, int& out) {
  out = parse_int<int>(n, path);
}

void read_scalar(const config_node& n, const std::string& path, std::int64_t& out) {
  out = parse_int<std::int64_t>(n, path);
}

void read_scalar(const config_node& n, const std::string& path, double& out) {
  const auto& s = scalar_or_fail(n, path, "a number");
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || errno == ERANGE)
    fail(n, path, "expected a finite number, got '" + s + "'");
  out = v;
}

void read_scalar(const config_node& n, const std::string& path, std::string& out) {
  out = scalar_or_fail(n, path, "a string");
}

}  // namespace detail

void config_reader::reject_unknown_keys() const {
  for (const auto& [key, child] : node_.entries) {
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    detail::fail(child, detail::join(path_, key.c_str()), "unknown key" + suggest(key, known_));
  }
}

void config_writer::line(const std::string& body, const char* doc) {
  text.append(static_cast<std::size_t>(indent_), ' ');
  text += body;
  if (doc != nullptr && *doc != '\0') {
    text += "  # ";
    text += doc;
  }
  text += '\n';
}

std::string config_writer::render(const std::string& v) {
  // Quote always: a value such as "yes", "1e5" or "" must read back as the same string.
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out + "\"";
}

}  // namespace troupe
