#include "environments/calculator.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"
#include "environments/options.hpp"
#include "environments/tags.hpp"

namespace troupe {

TROUPE_REGISTER_ENVIRONMENT("calculator", calculator_env,
                            "tool use: word problems solved with <tool>calc: EXPR</tool>, then <answer>N</answer>");

TROUPE_REGISTER_TASK_GENERATOR("calculator", [](const environment_options& o, std::uint64_t seed) {
  return std::unique_ptr<task_source>(new calculator_tasks(calculator_options::parse(o), seed));
});

namespace {

const std::vector<std::string> stop = {"</tool>", "</answer>"};

struct problem {
  std::string text, formula;
};

// One template: numbers in, problem text and formula out.
using problem_template = problem (*)(std::int64_t a, std::int64_t b, std::int64_t c);

std::string s(std::int64_t x) { return std::to_string(x); }

const problem_template word_problems[] = {
    [](std::int64_t a, std::int64_t b, std::int64_t) -> problem {
      return {"A shop has " + s(a) + " boxes with " + s(b) + " pencils in each box. How many pencils does it have?",
              s(a) + "*" + s(b)};
    },
    [](std::int64_t a, std::int64_t b, std::int64_t c) -> problem {
      return {"A train travels " + s(a) + " km every hour for " + s(b) + " hours, then " + s(c) +
                  " km more. How many km does it travel in all?",
              s(a) + "*" + s(b) + "+" + s(c)};
    },
    [](std::int64_t a, std::int64_t b, std::int64_t) -> problem {
      // a*b eggs into cartons of b: the division is exact by construction.
      return {"A farmer packs " + s(a * b) + " eggs into cartons of " + s(b) + " eggs each. How many cartons does she fill?",
              s(a * b) + "/" + s(b)};
    },
    [](std::int64_t a, std::int64_t b, std::int64_t c) -> problem {
      const std::int64_t absent = 1 + c % (a * b - 1);  // fewer than all of them
      return {"A school has " + s(b) + " classes of " + s(a) + " students. On Monday " + s(absent) +
                  " students are absent. How many students are present?",
              s(a) + "*" + s(b) + "-" + s(absent)};
    },
};

const problem_template expression_problems[] = {
    [](std::int64_t a, std::int64_t b, std::int64_t c) -> problem {
      const std::string e = s(a) + "*" + s(b) + "-" + s(c);
      return {"Compute " + e + ".", e};
    },
    [](std::int64_t a, std::int64_t b, std::int64_t c) -> problem {
      const std::string e = "(" + s(a) + "+" + s(b) + ")*" + s(c);
      return {"Compute " + e + ".", e};
    },
};

}  // namespace

calculator_options calculator_options::parse(const environment_options& o) {
  check_options(o, "calculator", {"max_tool_calls", "min_digits", "max_digits", "problems"});
  calculator_options c;
  c.max_tool_calls = static_cast<int>(option_int(o, "max_tool_calls", c.max_tool_calls, 0, 100));
  c.min_digits = static_cast<int>(option_int(o, "min_digits", c.min_digits, 1, 6));
  c.max_digits = static_cast<int>(option_int(o, "max_digits", c.max_digits, 1, 6));
  if (c.min_digits > c.max_digits) throw input_error("env.options.min_digits: must not exceed max_digits");
  c.problems = option_string(o, "problems", c.problems);
  if (c.problems != "mixed" && c.problems != "words" && c.problems != "expressions")
    throw input_error("env.options.problems: expected mixed, words or expressions, got '" + c.problems + "'");
  c.eval_fraction = option_eval_fraction(o);
  return c;
}

calculator_tasks::calculator_tasks(calculator_options opts, std::uint64_t seed) : opts_(std::move(opts)), seed_(seed) {}

task calculator_tasks::at(split sp, std::int64_t index) const {
  return draw_in_split(seed_, sp, index, opts_.eval_fraction, [&](std::uint64_t r) -> std::optional<task_candidate> {
    auto number = [&](std::uint64_t k) {
      const std::uint64_t x = splitmix64(r + k);
      const int d = opts_.min_digits + static_cast<int>(x % static_cast<std::uint64_t>(opts_.max_digits - opts_.min_digits + 1));
      std::int64_t lo = 1;
      for (int i = 1; i < d; ++i) lo *= 10;
      const std::int64_t hi = lo * 10 - 1;
      lo = std::max<std::int64_t>(lo, 2);  // no 0 or 1: they make trivial problems
      return lo + static_cast<std::int64_t>(splitmix64(x) % static_cast<std::uint64_t>(hi - lo + 1));
    };
    const std::size_t nw = std::size(word_problems), ne = std::size(expression_problems);
    const std::size_t n = opts_.problems == "words" ? nw : opts_.problems == "expressions" ? ne : nw + ne;
    std::size_t which = static_cast<std::size_t>(splitmix64(r) % n);
    if (opts_.problems == "expressions") which += nw;
    const problem p = (which < nw ? word_problems[which] : expression_problems[which - nw])(number(1), number(2), number(3));
    const expression_result v = evaluate_expression(p.formula);
    if (!v.ok) return std::nullopt;  // cannot happen with these templates; never hand out a wrong answer
    task_candidate c;
    c.key = p.text;
    c.t.id = std::string("calculator/") + split_name(sp) + "/" + std::to_string(index);
    c.t.prompt = p.text;
    c.t.metadata["answer"] = v.value.to_string();
    return c;
  });
}

const char* calculator_env::instructions() {
  return "You have a calculator. To use it, write <tool>calc: EXPRESSION</tool> (+ - * / and parentheses); "
         "the result comes back as <result>VALUE</result>. Give your final answer as <answer>NUMBER</answer>.\n\n";
}

calculator_env::calculator_env(const environment_options& options)
    : max_tool_calls_(calculator_options::parse(options).max_tool_calls) {}

observation calculator_env::reset(const task& t) {
  auto it = t.metadata.find("answer");
  auto v = it == t.metadata.end() ? std::nullopt : parse_rational(it->second);
  if (!v) throw input_error("calculator task '" + t.id + "': metadata.answer: expected an integer or a fraction");
  expected_ = *v;
  calls_ = well_formed_calls_ = 0;
  return {instructions() + t.prompt, stop};
}

step_result calculator_env::finish(double correct, double format, const std::string& reason, const std::string& answer) {
  step_result r;
  r.done = true;
  r.rewards["correct"] = correct;
  r.rewards["format"] = format;
  r.rewards["tool_format"] = calls_ == 0 ? 0.0 : static_cast<double>(well_formed_calls_) / calls_;
  r.info["reason"] = reason;
  r.info["tool_calls"] = std::to_string(calls_);
  r.info["answer"] = answer;
  r.info["expected"] = expected_.to_string();
  return r;
}

step_result calculator_env::step(const std::string& action) {
  auto tool = first_tag(action, "tool");
  auto answer = first_tag(action, "answer");
  if (tool && (!answer || tool->open < answer->open)) {
    if (calls_ == max_tool_calls_) return finish(0, 0, "too many tool calls (max " + std::to_string(max_tool_calls_) + ")", "");
    ++calls_;
    std::string result, error;
    const std::string_view body = trim(tool->content);
    if (!tool->closed) error = "missing </tool>";
    else if (body.substr(0, 5) != "calc:") error = "unknown tool; write <tool>calc: EXPRESSION</tool>";
    else {
      const expression_result e = evaluate_expression(body.substr(5));
      if (e.ok) result = e.value.to_string();
      else error = e.error;
    }
    step_result r;
    r.done = false;
    if (error.empty()) ++well_formed_calls_;
    else r.info["tool_error"] = error;
    r.next.text = "<result>" + (error.empty() ? result : "error: " + error) + "</result>";
    r.next.stop_strings = stop;
    return r;
  }
  if (!answer) return finish(0, 0, "no <tool> call or <answer>", "");
  const std::string given(trim(answer->content));
  auto v = answer->closed ? parse_rational(given) : std::nullopt;
  if (!v) return finish(0, 0, answer->closed ? "answer '" + given + "' is not a number" : "missing </answer>", given);
  if (*v != expected_) return finish(0, 1, "answer " + v->to_string() + ", expected " + expected_.to_string(), given);
  return finish(1, 1, "", given);
}

}  // namespace troupe
