#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"
#include "environments/arithmetic.hpp"

namespace troupe {
namespace {

TEST(arithmetic_tasks, are_a_pure_function_of_seed_split_and_index) {
  arithmetic_tasks a(arithmetic_options{}, 7), b(arithmetic_options{}, 7), c(arithmetic_options{}, 8);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(a.at(split::train, i).prompt, b.at(split::train, i).prompt);
    EXPECT_EQ(a.at(split::eval, i).metadata, b.at(split::eval, i).metadata);
  }
  int differ = 0;
  for (int i = 0; i < 50; ++i) differ += a.at(split::train, i).prompt != c.at(split::train, i).prompt;
  EXPECT_GT(differ, 40) << "another seed gives other problems";
}

TEST(arithmetic_tasks, train_and_eval_splits_never_share_a_problem) {
  arithmetic_options o;
  o.max_digits = 1;  // a small problem space (200 problems), where overlap would show
  arithmetic_tasks t(o, 3);
  std::set<std::string> train, eval;
  for (int i = 0; i < 2000; ++i) train.insert(t.at(split::train, i).prompt);
  for (int i = 0; i < 300; ++i) eval.insert(t.at(split::eval, i).prompt);
  EXPECT_GT(eval.size(), 5u);
  for (const auto& p : eval) EXPECT_EQ(train.count(p), 0u) << p;
}

TEST(arithmetic_tasks, answers_are_right) {
  arithmetic_options o;
  o.ops = "+-*";
  arithmetic_tasks t(o, 1);
  for (int i = 0; i < 100; ++i) {
    auto task = t.at(split::train, i);
    const auto& p = task.prompt;
    auto op = p.find_first_of("+-*", 1);
    long a = std::stol(p.substr(0, op)), b = std::stol(p.substr(op + 1, p.size() - op - 2));
    long want = p[op] == '+' ? a + b : p[op] == '-' ? a - b : a * b;
    EXPECT_EQ(task.metadata["answer"], std::to_string(want)) << p;
    EXPECT_EQ(p.back(), '=');
  }
}

TEST(arithmetic_env, rewards_correct_and_format_separately) {
  auto env = make_environment("arithmetic");
  task t{"x", "12+34=", {{"answer", "46"}}};
  auto obs = env->reset(t);
  EXPECT_EQ(obs.text, "12+34=");
  EXPECT_EQ(obs.stop_strings, std::vector<std::string>{"\n"});
  auto r = env->step("46\n");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.rewards["correct"], 1.0);
  EXPECT_EQ(r.rewards["format"], 1.0);
  env->reset(t);
  r = env->step("45");
  EXPECT_EQ(r.rewards["correct"], 0.0);
  EXPECT_EQ(r.rewards["format"], 1.0);
  env->reset(t);
  r = env->step("4 6");
  EXPECT_EQ(r.rewards["correct"], 0.0);
  EXPECT_EQ(r.rewards["format"], 0.0);
  env->reset({"n", "5-9=", {{"answer", "-4"}}});
  EXPECT_EQ(env->step("-4\n").rewards["correct"], 1.0);
}

TEST(arithmetic_env, bad_options_and_tasks_are_input_errors) {
  EXPECT_THROW(make_environment("arithmetic", {{"max_digits", "x"}}), input_error);
  EXPECT_THROW(make_environment("arithmetic", {{"ops", "/"}}), input_error);
  EXPECT_THROW(make_environment("arithmetic", {{"digits", "2"}}), input_error);
  EXPECT_THROW(make_environment("arithmetic", {{"min_digits", "3"}, {"max_digits", "2"}}), input_error);
  auto env = make_environment("arithmetic");
  EXPECT_THROW(env->reset({"x", "1+1=", {}}), input_error);
}

TEST(environment_registry, unknown_names_suggest_the_closest) {
  try {
    make_environment("arithmetik");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'arithmetic'"), std::string::npos) << e.what();
  }
  bool found = false;
  for (const auto& e : registered_environments()) found |= e.name == "arithmetic";
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace troupe
