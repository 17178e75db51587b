#include "environments/countdown.hpp"

#include <algorithm>
#include <map>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "environments/expression.hpp"
#include "environments/options.hpp"
#include "environments/tags.hpp"

namespace troupe {

TROUPE_REGISTER_ENVIRONMENT("countdown", countdown_env,
                            "reach a target with + - * / over given numbers; <answer>expr</answer>");

TROUPE_REGISTER_TASK_GENERATOR("countdown", [](const environment_options& o, std::uint64_t seed) {
  return std::unique_ptr<task_source>(new countdown_tasks(countdown_options::parse(o), seed));
});

namespace {

// A counter-based stream over one draw's 64 random bits.
struct bits {
  std::uint64_t state;
  std::uint64_t next() { return splitmix64(state += 0x9e3779b97f4a7c15ULL); }
  std::int64_t uniform(std::int64_t lo, std::int64_t hi) {  // in [lo, hi]
    return lo + static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(hi - lo + 1));
  }
};

std::string join(const std::vector<std::int64_t>& v, const char* sep) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
  return s;
}

// "25 5 4" or "25, 5, 4" -> {25, 5, 4}; input_error naming the task otherwise.
std::vector<std::int64_t> parse_numbers(const task& t) {
  auto it = t.metadata.find("numbers");
  if (it == t.metadata.end()) throw input_error("countdown task '" + t.id + "': metadata has no 'numbers'");
  std::string s = it->second;
  std::replace(s.begin(), s.end(), ',', ' ');
  std::vector<std::int64_t> out;
  std::size_t p = 0;
  while ((p = s.find_first_not_of(' ', p)) != std::string::npos) {
    const auto e = std::min(s.find(' ', p), s.size());
    auto v = parse_rational(s.substr(p, e - p));
    if (!v || !v->is_integer() || v->num < 0)
      throw input_error("countdown task '" + t.id + "': metadata.numbers: '" + s.substr(p, e - p) +
                        "' is not a non-negative integer");
    out.push_back(v->num);
    p = e;
  }
  if (out.empty()) throw input_error("countdown task '" + t.id + "': metadata.numbers is empty");
  return out;
}

}  // namespace

countdown_options countdown_options::parse(const environment_options& o) {
  check_options(o, "countdown", {"min_numbers", "max_numbers", "max_number", "min_target", "max_target", "use_all"});
  countdown_options c;
  c.min_numbers = static_cast<int>(option_int(o, "min_numbers", c.min_numbers, 2, 8));
  c.max_numbers = static_cast<int>(option_int(o, "max_numbers", c.max_numbers, 2, 8));
  if (c.min_numbers > c.max_numbers) throw input_error("env.options.min_numbers: must not exceed max_numbers");
  c.max_number = option_int(o, "max_number", c.max_number, 2, 1000);
  c.min_target = option_int(o, "min_target", c.min_target, 0, 1000000);
  c.max_target = option_int(o, "max_target", c.max_target, 1, 1000000);
  if (c.min_target > c.max_target) throw input_error("env.options.min_target: must not exceed max_target");
  c.use_all = option_bool(o, "use_all", c.use_all);
  c.eval_fraction = option_eval_fraction(o);
  return c;
}

countdown_tasks::countdown_tasks(countdown_options opts, std::uint64_t seed) : opts_(std::move(opts)), seed_(seed) {}

task countdown_tasks::at(split s, std::int64_t index) const {
  return draw_in_split(seed_, s, index, opts_.eval_fraction, [&](std::uint64_t r) -> std::optional<task_candidate> {
    bits b{r};
    const auto n = static_cast<std::size_t>(b.uniform(opts_.min_numbers, opts_.max_numbers));
    std::vector<std::int64_t> numbers(n);
    for (auto& x : numbers) x = b.uniform(1, opts_.max_number);

    // Combine all numbers pairwise until one is left: the witness expression.
    struct item {
      std::int64_t value;
      std::string expr;
    };
    std::vector<item> pool;
    for (auto x : numbers) pool.push_back({x, std::to_string(x)});
    while (pool.size() > 1) {
      const auto i = static_cast<std::size_t>(b.uniform(0, static_cast<std::int64_t>(pool.size()) - 1));
      item x = pool[i];
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
      const auto j = static_cast<std::size_t>(b.uniform(0, static_cast<std::int64_t>(pool.size()) - 1));
      item y = pool[j];
      pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(j));
      if (x.value < y.value) std::swap(x, y);  // x >= y keeps '-' and '/' positive
      char op = "+-*/"[b.next() % 4];
      if (op == '-' && x.value == y.value) op = '+';
      if (op == '/' && x.value % y.value != 0) op = '*';
      const std::int64_t v = op == '+' ? x.value + y.value : op == '-' ? x.value - y.value
                             : op == '*' ? x.value * y.value : x.value / y.value;
      if (v > 1000000000) return std::nullopt;
      pool.push_back({v, "(" + x.expr + op + y.expr + ")"});
    }
    const std::int64_t target = pool[0].value;
    if (target < opts_.min_target || target > opts_.max_target) return std::nullopt;
    std::string solution = pool[0].expr;
    if (n > 1) solution = solution.substr(1, solution.size() - 2);

    task_candidate c;
    auto sorted = numbers;
    std::sort(sorted.begin(), sorted.end());
    c.key = join(sorted, ",") + "=" + std::to_string(target);
    c.t.id = std::string("countdown/") + split_name(s) + "/" + std::to_string(index);
    c.t.prompt = "Using the numbers [" + join(numbers, ", ") + "], create an equation that equals " +
                 std::to_string(target) + ". You can use + - * / and parentheses, and each number " +
                 (opts_.use_all ? "exactly once" : "at most once") +
                 ". Write the final equation in <answer> </answer> tags, for example <answer>(1 + 2) / 3</answer>.";
    c.t.metadata["numbers"] = join(numbers, " ");
    c.t.metadata["target"] = std::to_string(target);
    c.t.metadata["solution"] = solution;
    return c;
  });
}

countdown_verdict judge_countdown(const std::string& action, const std::vector<std::int64_t>& numbers,
                                  std::int64_t target, bool use_all) {
  countdown_verdict v;
  auto tag = last_closed_tag(action, "answer");
  if (!tag) {
    v.reason = "no <answer> tag";
    return v;
  }
  v.answer = std::string(trim(tag->content));
  expression_limits limits;
  limits.allow_unary_minus = false;
  const expression_result e = evaluate_expression(v.answer, limits);
  if (!e.ok) {
    v.reason = e.error;
    return v;
  }
  v.well_formed = true;
  v.value = e.value.to_string();
  std::map<std::int64_t, int> left;
  for (auto x : numbers) ++left[x];
  for (auto x : e.literals) {
    auto it = left.find(x);
    if (it == left.end()) {
      v.reason = "number " + std::to_string(x) + " is not available";
      return v;
    }
    if (it->second-- == 0) {
      v.reason = "number " + std::to_string(x) + " used more than once";
      return v;
    }
  }
  if (use_all)
    for (const auto& [x, n] : left)
      if (n > 0) {
        v.reason = "number " + std::to_string(x) + " not used";
        return v;
      }
  if (e.value != rational{target, 1}) {
    v.reason = "value " + v.value + ", target " + std::to_string(target);
    return v;
  }
  v.correct = true;
  return v;
}

countdown_env::countdown_env(const environment_options& options) : use_all_(countdown_options::parse(options).use_all) {}

observation countdown_env::reset(const task& t) {
  numbers_ = parse_numbers(t);
  auto it = t.metadata.find("target");
  auto target = it == t.metadata.end() ? std::nullopt : parse_rational(it->second);
  if (!target || !target->is_integer())
    throw input_error("countdown task '" + t.id + "': metadata.target: expected an integer");
  target_ = target->num;
  return {t.prompt, {"</answer>"}};
}

step_result countdown_env::step(const std::string& action) {
  const countdown_verdict v = judge_countdown(action, numbers_, target_, use_all_);
  step_result r;
  r.done = true;
  r.rewards["format"] = v.well_formed ? 1.0 : 0.0;
  r.rewards["correct"] = v.correct ? 1.0 : 0.0;
  r.info["reason"] = v.reason;
  r.info["answer"] = v.answer;
  r.info["value"] = v.value;
  r.info["target"] = std::to_string(target_);
  return r;
}

}  // namespace troupe
