#include "environments/options.hpp"

#include <charconv>
#include <cstdlib>
#include <vector>

#include "core/config_binding.hpp"
#include "core/error.hpp"

namespace troupe {

namespace {
const char* const task_source_keys[] = {"tasks_file", "split", "eval_fraction"};

[[noreturn]] void bad_value(const std::string& key, const std::string& want, const std::string& got) {
  throw input_error("env.options." + key + ": expected " + want + ", got '" + got + "'");
}
}  // namespace

bool is_task_source_option(const std::string& key) {
  for (const char* k : task_source_keys)
    if (key == k) return true;
  return false;
}

void check_options(const environment_options& o, const std::string& env_name, std::initializer_list<const char*> known) {
  for (const auto& [k, v] : o) {
    if (is_task_source_option(k)) continue;
    bool ok = false;
    for (const char* n : known) ok |= k == n;
    if (ok) continue;
    std::vector<std::string> names(known.begin(), known.end());
    names.insert(names.end(), std::begin(task_source_keys), std::end(task_source_keys));
    throw input_error("env.options." + k + ": unknown option for " + env_name + suggest(k, names));
  }
}

std::int64_t option_int(const environment_options& o, const std::string& key, std::int64_t fallback, std::int64_t lo,
                        std::int64_t hi) {
  auto it = o.find(key);
  if (it == o.end()) return fallback;
  const std::string& s = it->second;
  std::int64_t v = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || res.ec != std::errc() || res.ptr != s.data() + s.size() || v < lo || v > hi)
    bad_value(key, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", s);
  return v;
}

double option_double(const environment_options& o, const std::string& key, double fallback, double lo, double hi) {
  auto it = o.find(key);
  if (it == o.end()) return fallback;
  const std::string& s = it->second;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v >= lo && v <= hi))
    bad_value(key, "a number in [" + format_double(lo) + ", " + format_double(hi) + "]", s);
  return v;
}

bool option_bool(const environment_options& o, const std::string& key, bool fallback) {
  auto it = o.find(key);
  if (it == o.end()) return fallback;
  const std::string& s = it->second;
  if (s == "true" || s == "1" || s == "yes") return true;
  if (s == "false" || s == "0" || s == "no") return false;
  bad_value(key, "true or false", s);
}

std::string option_string(const environment_options& o, const std::string& key, const std::string& fallback) {
  auto it = o.find(key);
  return it == o.end() ? fallback : it->second;
}

double option_eval_fraction(const environment_options& o) {
  const double f = option_double(o, "eval_fraction", 0.1, 0, 1);
  if (!(f > 0 && f < 1)) bad_value("eval_fraction", "a number in (0, 1)", o.at("eval_fraction"));
  return f;
}

}  // namespace troupe
