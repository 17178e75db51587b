#include "environments/arithmetic.hpp"

#include <charconv>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "environments/options.hpp"

namespace troupe {

TROUPE_REGISTER_ENVIRONMENT("arithmetic", arithmetic_env, "integer + - * problems, one answer each");

TROUPE_REGISTER_TASK_GENERATOR("arithmetic", [](const environment_options& o, std::uint64_t seed) {
  return std::unique_ptr<task_source>(new arithmetic_tasks(arithmetic_options::parse(o), seed));
});

namespace {

std::int64_t pow10(int d) {
  std::int64_t p = 1;
  while (d-- > 0) p *= 10;
  return p;
}

}  // namespace

arithmetic_options arithmetic_options::parse(const environment_options& o) {
  check_options(o, "arithmetic", {"min_digits", "max_digits", "ops"});
  arithmetic_options a;
  a.min_digits = static_cast<int>(option_int(o, "min_digits", a.min_digits, 1, 9));
  a.max_digits = static_cast<int>(option_int(o, "max_digits", a.max_digits, 1, 9));
  if (a.min_digits > a.max_digits) throw input_error("env.options.min_digits: must not exceed max_digits");
  a.ops = option_string(o, "ops", a.ops);
  if (a.ops.empty() || a.ops.find_first_not_of("+-*") != std::string::npos)
    throw input_error("env.options.ops: expected some of '+-*', got '" + a.ops + "'");
  a.eval_fraction = option_eval_fraction(o);
  return a;
}

arithmetic_tasks::arithmetic_tasks(arithmetic_options opts, std::uint64_t seed) : opts_(std::move(opts)), seed_(seed) {}

task arithmetic_tasks::at(split s, std::int64_t index) const {
  return draw_in_split(seed_, s, index, opts_.eval_fraction, [&](std::uint64_t r) {
    auto digits = [&](std::uint64_t x) {
      const int d = opts_.min_digits + static_cast<int>(x % static_cast<std::uint64_t>(opts_.max_digits - opts_.min_digits + 1));
      const std::int64_t lo = d == 1 ? 0 : pow10(d - 1), hi = pow10(d) - 1;
      return lo + static_cast<std::int64_t>(splitmix64(x) % static_cast<std::uint64_t>(hi - lo + 1));
    };
    const std::int64_t a = digits(splitmix64(r + 1)), b = digits(splitmix64(r + 2));
    const char op = opts_.ops[static_cast<std::size_t>(splitmix64(r + 3) % opts_.ops.size())];
    task_candidate c;
    c.key = std::to_string(a) + op + std::to_string(b) + "=";
    const std::int64_t answer = op == '+' ? a + b : op == '-' ? a - b : a * b;
    c.t.id = std::string("arithmetic/") + split_name(s) + "/" + std::to_string(index);
    c.t.prompt = c.key;
    c.t.metadata["answer"] = std::to_string(answer);
    return std::optional<task_candidate>(std::move(c));
  });
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
