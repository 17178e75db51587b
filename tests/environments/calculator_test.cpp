#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"
#include "environments/calculator.hpp"

namespace troupe {
namespace {

task problem() { return {"q", "A shop has 12 boxes of 7 pencils. How many pencils?", {{"answer", "84"}}}; }

TEST(calculator_env, a_tool_call_is_answered_and_the_answer_ends_the_episode) {
  auto env = make_environment("calculator");
  auto obs = env->reset(problem());
  EXPECT_EQ(obs.text, std::string(calculator_env::instructions()) + problem().prompt);
  EXPECT_EQ(obs.stop_strings, (std::vector<std::string>{"</tool>", "</answer>"}));
  auto r = env->step("I need 12 times 7. <tool>calc: 12*7</tool>");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.next.text, "<result>84</result>");
  EXPECT_TRUE(r.rewards.empty());
  r = env->step("<answer>84</answer>");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.rewards["correct"], 1.0);
  EXPECT_EQ(r.rewards["format"], 1.0);
  EXPECT_EQ(r.rewards["tool_format"], 1.0);
  EXPECT_EQ(r.info["tool_calls"], "1");
  EXPECT_EQ(r.info["reason"], "");
}

TEST(calculator_env, results_are_exact_and_tool_errors_are_shown_to_the_policy) {
  auto env = make_environment("calculator");
  env->reset(problem());
  EXPECT_EQ(env->step("<tool>calc: 7/2</tool>").next.text, "<result>7/2</result>");
  auto r = env->step("<tool>calc: 1/(2-2)</tool>");
  EXPECT_EQ(r.next.text, "<result>error: division by zero</result>");
  EXPECT_EQ(r.info["tool_error"], "division by zero");
  r = env->step("<tool>search: pencils</tool>");
  EXPECT_EQ(r.next.text, "<result>error: unknown tool; write <tool>calc: EXPRESSION</tool></result>");
  r = env->step("<tool>calc: 12*7");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.info["tool_error"], "missing </tool>");
  r = env->step("<answer>84</answer>");
  EXPECT_EQ(r.rewards["correct"], 1.0);
  EXPECT_EQ(r.rewards["tool_format"], 0.25) << "one of four calls was well-formed";
}

TEST(calculator_env, too_many_tool_calls_end_the_episode_with_zero) {
  auto env = make_environment("calculator", {{"max_tool_calls", "2"}});
  env->reset(problem());
  EXPECT_FALSE(env->step("<tool>calc: 1+1</tool>").done);
  EXPECT_FALSE(env->step("<tool>calc: 2+2</tool>").done);
  auto r = env->step("<tool>calc: 12*7</tool>");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.rewards["correct"], 0.0);
  EXPECT_EQ(r.rewards["tool_format"], 1.0) << "the refused call is not judged";
  EXPECT_EQ(r.info["reason"], "too many tool calls (max 2)");
  EXPECT_EQ(r.info["tool_calls"], "2");
}

TEST(calculator_env, wrong_or_malformed_answers_get_zero_with_a_reason) {
  auto env = make_environment("calculator");
  struct row {
    const char* action;
    double format;
    const char* reason;
  };
  for (const row& w : std::vector<row>{
           {"<answer>83</answer>", 1, "answer 83, expected 84"},
           {"<answer>12*7</answer>", 0, "answer '12*7' is not a number"},
           {"<answer>84", 0, "missing </answer>"},
           {"84", 0, "no <tool> call or <answer>"},
           {"", 0, "no <tool> call or <answer>"},
       }) {
    env->reset(problem());
    auto r = env->step(w.action);
    EXPECT_TRUE(r.done) << w.action;
    EXPECT_EQ(r.rewards["correct"], 0.0) << w.action;
    EXPECT_EQ(r.rewards["format"], w.format) << w.action;
    EXPECT_EQ(r.rewards["tool_format"], 0.0) << "no calls: " << w.action;
    EXPECT_EQ(r.info["reason"], w.reason) << w.action;
  }
  env->reset({"f", "half of 7", {{"answer", "7/2"}}});
  EXPECT_EQ(env->step("<answer>14/4</answer>").rewards["correct"], 1.0) << "compared as rationals";
}

TEST(calculator_env, the_first_opening_tag_decides_between_call_and_answer) {
  auto env = make_environment("calculator");
  env->reset(problem());
  EXPECT_FALSE(env->step("<tool>calc: 12*7</tool> <answer>84</answer>").done);
  env->reset(problem());
  EXPECT_TRUE(env->step("<answer>84</answer> <tool>calc: 1</tool>").done);
}

TEST(calculator_env, bad_tasks_and_options_are_input_errors) {
  auto env = make_environment("calculator");
  EXPECT_THROW(env->reset({"x", "p", {}}), input_error);
  EXPECT_THROW(env->reset({"x", "p", {{"answer", "eighty"}}}), input_error);
  EXPECT_THROW(make_environment("calculator", {{"problems", "poems"}}), input_error);
  EXPECT_THROW(make_environment("calculator", {{"max_tool_calls", "-1"}}), input_error);
}

TEST(calculator_tasks, answers_match_the_calculator_and_splits_are_disjoint) {
  calculator_options o;
  calculator_tasks gen(o, 9), again(o, 9);
  auto env = make_environment("calculator");
  std::set<std::string> train, eval;
  std::set<std::string> kinds;
  for (int i = 0; i < 300; ++i) {
    task t = gen.at(split::train, i);
    EXPECT_EQ(t.prompt, again.at(split::train, i).prompt);
    train.insert(t.prompt);
    kinds.insert(t.prompt.substr(0, 8));
    EXPECT_TRUE(parse_rational(t.metadata.at("answer")).has_value());
    EXPECT_TRUE(parse_rational(t.metadata.at("answer"))->is_integer()) << t.prompt;
  }
  for (int i = 0; i < 100; ++i) eval.insert(gen.at(split::eval, i).prompt);
  for (const auto& p : eval) EXPECT_EQ(train.count(p), 0u) << p;
  EXPECT_EQ(kinds.size(), 5u) << "every template appears (both expressions start with Compute)";
  // The answers hold: "Compute (a+b)*c." evaluated independently.
  calculator_options e;
  e.problems = "expressions";
  calculator_tasks exprs(e, 2);
  for (int i = 0; i < 50; ++i) {
    task t = exprs.at(split::train, i);
    ASSERT_EQ(t.prompt.rfind("Compute ", 0), 0u);
    const std::string expr = t.prompt.substr(8, t.prompt.size() - 9);
    long long want = 0;
    if (expr[0] == '(') {
      long long a = 0, b = 0, c = 0;
      ASSERT_EQ(std::sscanf(expr.c_str(), "(%lld+%lld)*%lld", &a, &b, &c), 3);
      want = (a + b) * c;
    } else {
      long long a = 0, b = 0, c = 0;
      ASSERT_EQ(std::sscanf(expr.c_str(), "%lld*%lld-%lld", &a, &b, &c), 3);
      want = a * b - c;
    }
    EXPECT_EQ(t.metadata.at("answer"), std::to_string(want)) << expr;
  }
}

}  // namespace
}  // namespace troupe
