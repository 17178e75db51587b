#include "environments/arithmetic.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "core/error.hpp"
#include "core/hash.hpp"

namespace troupe {

TROUPE_REGISTER_ENVIRONMENT("arithmetic", arithmetic_env, "integer + - * problems, one answer each");

namespace {

std::int64_t pow10(int d) {
  std::int64_t p = 1;
  while (d-- > 0) p *= 10;
  return p;
}

int option_int(const environment_options& o, const std::string& key, int fallback, int lo, int hi) {
  auto it = o.find(key);
  if (it == o.end()) return fallback;
  int v = 0;
  auto res = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (res.ec != std::errc() || res.ptr != it->second.data() + it->second.size() || v < lo || v > hi)
    throw input_error("env.options." + key + ": expected an integer in [" + std::to_string(lo) + ", " +
                      std::to_string(hi) + "], got '" + it->second + "'");
  return v;
}

}  // namespace

arithmetic_options arithmetic_options::parse(const environment_options& o) {
  static const char* known[] = {"min_digits", "max_digits", "ops", "eval_fraction"};
  for (const auto& [k, v] : o)
    if (std::find(std::begin(known), std::end(known), k) == std::end(known))
      throw input_error("env.options." + k + ": unknown option for arithmetic (min_digits, max_digits, ops, eval_fraction)");
  arithmetic_options a;
  a.min_digits = option_int(o, "min_digits", a.min_digits, 1, 9);
  a.max_digits = option_int(o, "max_digits", a.max_digits, 1, 9);
  if (a.min_digits > a.max_digits) throw input_error("env.options.min_digits: must not exceed max_digits");
  if (auto it = o.find("ops"); it != o.end()) a.ops = it->second;
  if (a.ops.empty() || a.ops.find_first_not_of("+-*") != std::string::npos)
    throw input_error("env.options.ops: expected some of '+-*', got '" + a.ops + "'");
  if (auto it = o.find("eval_fraction"); it != o.end()) {
    char* end = nullptr;
    a.eval_fraction = std::strtod(it->second.c_str(), &end);
    if (end != it->second.c_str() + it->second.size() || !(a.eval_fraction > 0 && a.eval_fraction < 1))
      throw input_error("env.options.eval_fraction: expected a number in (0, 1), got '" + it->second + "'");
  }
  return a;
}

arithmetic_tasks::arithmetic_tasks(arithmetic_options opts, std::uint64_t seed) : opts_(std::move(opts)), seed_(seed) {}

task arithmetic_tasks::at(split s, std::int64_t index) const {
  const std::uint64_t stream = splitmix64(seed_ ^ (s == split::train ? 0x7472ULL : 0x6576ULL));
  // Rejection-sample problems of this split: draw k = 0, 1, ... from the stream until a
  // problem whose split hash says `s`. The expected number of draws is small (1/fraction
  // at worst), and the result depends only on (seed, split, index).
  for (std::uint64_t k = 0;; ++k) {
    std::uint64_t r = splitmix64(stream + splitmix64(static_cast<std::uint64_t>(index)) * 0x100000001b3ULL + k);
    auto digits = [&](std::uint64_t x) {
      const int d = opts_.min_digits + static_cast<int>(x % static_cast<std::uint64_t>(opts_.max_digits - opts_.min_digits + 1));
      const std::int64_t lo = d == 1 ? 0 : pow10(d - 1), hi = pow10(d) - 1;
      return lo + static_cast<std::int64_t>(splitmix64(x) % static_cast<std::uint64_t>(hi - lo + 1));
    };
    const std::int64_t a = digits(splitmix64(r + 1)), b = digits(splitmix64(r + 2));
    const char op = opts_.ops[static_cast<std::size_t>(splitmix64(r + 3) % opts_.ops.size())];
    const std::string problem = std::to_string(a) + op + std::to_string(b) + "=";
    std::uint64_t h = splitmix64(seed_ ^ fnv1a(problem) ^ 0x5eedULL);
    const bool is_eval = static_cast<double>(h % 1000000) < opts_.eval_fraction * 1e6;
    if (is_eval != (s == split::eval)) continue;
    const std::int64_t answer = op == '+' ? a + b : op == '-' ? a - b : a * b;
    task t;
    t.id = std::string("arithmetic/") + (s == split::train ? "train/" : "eval/") + std::to_string(index);
    t.prompt = problem;
    t.metadata["answer"] = std::to_string(answer);
    return t;
  }
}

arithmetic_env::arithmetic_env(const environment_options& options) { arithmetic_options::parse(options); }

observation arithmetic_env::reset(const task& t) {
  auto it = t.metadata.find("answer");
  if (it == t.metadata.end()) throw input_error("arithmetic task '" + t.id + "': metadata has no 'answer'");
  answer_ = it->second;
  return {t.prompt, {"\n"}};
}

step_result arithmetic_env::step(const std::string& action) {
  std::string a = action;
  while (!a.empty() && (a.back() == '\n' || a.back() == ' ')) a.pop_back();
  std::int64_t v = 0;
  auto res = std::from_chars(a.data(), a.data() + a.size(), v);
  const bool is_integer = !a.empty() && res.ec == std::errc() && res.ptr == a.data() + a.size();
  step_result r;
  r.done = true;
  r.rewards["format"] = is_integer ? 1.0 : 0.0;
  r.rewards["correct"] = is_integer && std::to_string(v) == answer_ ? 1.0 : 0.0;
  r.info["expected"] = answer_;
  r.info["parsed"] = is_integer ? std::to_string(v) : "";
  return r;
}

}  // namespace troupe
