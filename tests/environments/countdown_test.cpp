#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "environments/countdown.hpp"
#include "environments/expression.hpp"

namespace troupe {
namespace {

task example() { return {"c", "Using the numbers [25, 5, 4] ...", {{"numbers", "25 5 4"}, {"target", "80"}}}; }

step_result answer(const std::string& action, environment_options o = {}) {
  auto env = make_environment("countdown", o);
  auto obs = env->reset(example());
  EXPECT_EQ(obs.stop_strings, std::vector<std::string>{"</answer>"});
  return env->step(action);
}

TEST(countdown_env, a_right_answer_scores_format_and_correct) {
  auto r = answer("25-5=20, 20*4=80. <answer>(25-5)*4</answer>");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.rewards["format"], 1.0);
  EXPECT_EQ(r.rewards["correct"], 1.0);
  EXPECT_EQ(r.info["reason"], "");
  EXPECT_EQ(r.info["value"], "80");
  EXPECT_EQ(answer("<answer> 4 * (25 - 5) </answer>").rewards["correct"], 1.0) << "spacing and order are free";
  EXPECT_EQ(answer("<answer>5*4*4</answer>").info["reason"], "number 4 used more than once");
}

TEST(countdown_env, the_last_answer_tag_counts) {
  EXPECT_EQ(answer("<answer>25+5</answer> no wait <answer>(25-5)*4</answer>").rewards["correct"], 1.0);
  EXPECT_EQ(answer("<answer>(25-5)*4</answer> no wait <answer>25+5</answer>").rewards["correct"], 0.0);
}

TEST(countdown_env, wrong_or_malformed_answers_get_zero_with_a_reason) {
  struct row {
    const char* action;
    double format;
    const char* reason;
  };
  for (const row& w : std::vector<row>{
           {"(25-5)*4", 0, "no <answer> tag"},
           {"<answer>(25-5)*4", 0, "no <answer> tag"},
           {"<answer>25+5+4</answer>", 1, "value 34, target 80"},
           {"<answer>25*5*4/0</answer>", 0, "division by zero"},
           {"<answer>(25-5)*4*1</answer>", 1, "number 1 is not available"},
           {"<answer>25+25+5*4+10</answer>", 1, "number 25 used more than once"},
           {"<answer>(25-5)x4</answer>", 0, "unexpected character 'x' at 6"},
           {"<answer>-5+85</answer>", 0, "unexpected character '-' at 0"},
           {"<answer></answer>", 0, "empty expression"},
           {"<answer>99999999999999999999999</answer>", 0, "number too large at 0"},
       }) {
    auto r = answer(w.action);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.rewards["correct"], 0.0) << w.action;
    EXPECT_EQ(r.rewards["format"], w.format) << w.action;
    EXPECT_EQ(r.info["reason"], w.reason) << w.action;
  }
}

TEST(countdown_env, exact_division_midway_need_not_be_integral) {
  auto env = make_environment("countdown");
  env->reset({"x", "", {{"numbers", "7 2 4"}, {"target", "14"}}});
  // (7/2)*4: 7/2 is not an integer, yet the exact value reaches the target.
  EXPECT_EQ(env->step("<answer>(7/2)*4</answer>").rewards["correct"], 1.0);
}

TEST(countdown_env, use_all_demands_every_number) {
  EXPECT_EQ(answer("<answer>25*4-20</answer>", {{"use_all", "true"}}).info["reason"], "number 20 is not available");
  auto r = answer("<answer>20*4</answer>", {{"use_all", "true"}});
  EXPECT_EQ(r.info["reason"], "number 20 is not available");
  auto env = make_environment("countdown", {{"use_all", "true"}});
  env->reset({"x", "", {{"numbers", "25 5 4 3"}, {"target", "80"}}});
  auto partial = env->step("<answer>(25-5)*4</answer>");
  EXPECT_EQ(partial.rewards["correct"], 0.0);
  EXPECT_EQ(partial.info["reason"], "number 3 not used");
  EXPECT_EQ(answer("<answer>(25-5)*4</answer>", {{"use_all", "true"}}).rewards["correct"], 1.0);
}

TEST(countdown_env, malformed_tasks_and_options_are_input_errors) {
  auto env = make_environment("countdown");
  EXPECT_THROW(env->reset({"x", "", {{"target", "80"}}}), input_error);
  EXPECT_THROW(env->reset({"x", "", {{"numbers", "1 two"}, {"target", "80"}}}), input_error);
  EXPECT_THROW(env->reset({"x", "", {{"numbers", "1 2"}, {"target", "8.5"}}}), input_error);
  EXPECT_THROW(make_environment("countdown", {{"max_numbers", "1"}}), input_error);
  EXPECT_THROW(make_environment("countdown", {{"min_numbers", "5"}, {"max_numbers", "4"}}), input_error);
  EXPECT_THROW(make_environment("countdown", {{"use_all", "maybe"}}), input_error);
  EXPECT_THROW(make_environment("countdown", {{"max_nums", "4"}}), input_error);
  EXPECT_NO_THROW(make_environment("countdown", {{"tasks_file", "x.jsonl"}, {"eval_fraction", "0.2"}}))
      << "task-source keys are the source's, and the environment lets them through";
}

TEST(countdown_tasks, every_generated_task_is_solved_by_its_solution) {
  countdown_options o;
  o.use_all = true;
  countdown_tasks gen(o, 5);
  auto env = make_environment("countdown", {{"use_all", "true"}});
  for (int i = 0; i < 200; ++i) {
    for (split s : {split::train, split::eval}) {
      task t = gen.at(s, i);
      env->reset(t);
      auto r = env->step("<answer>" + t.metadata.at("solution") + "</answer>");
      ASSERT_EQ(r.rewards["correct"], 1.0) << t.prompt << " / " << t.metadata.at("solution") << ": " << r.info["reason"];
      const auto target = std::stoll(t.metadata.at("target"));
      EXPECT_GE(target, 1);
      EXPECT_LE(target, 100);
    }
  }
}

TEST(countdown_tasks, are_deterministic_and_splits_are_disjoint) {
  countdown_options o;
  o.min_numbers = o.max_numbers = 3;
  o.max_number = 9;  // a small space, where an overlap would show
  countdown_tasks a(o, 11), b(o, 11), c(o, 12);
  std::set<std::string> train, eval;
  int differ = 0;
  for (int i = 0; i < 1500; ++i) {
    task t = a.at(split::train, i);
    EXPECT_EQ(t.prompt, b.at(split::train, i).prompt);
    differ += t.prompt != c.at(split::train, i).prompt;
    auto nums = t.metadata.at("numbers");
    std::vector<std::string> sorted;
    // The split key is the sorted numbers and the target.
    std::stringstream ss(nums);
    for (std::string x; ss >> x;) sorted.push_back(x);
    std::sort(sorted.begin(), sorted.end());
    std::string key;
    for (auto& x : sorted) key += x + ",";
    train.insert(key + "=" + t.metadata.at("target"));
  }
  for (int i = 0; i < 300; ++i) {
    task t = a.at(split::eval, i);
    std::stringstream ss(t.metadata.at("numbers"));
    std::vector<std::string> sorted;
    for (std::string x; ss >> x;) sorted.push_back(x);
    std::sort(sorted.begin(), sorted.end());
    std::string key;
    for (auto& x : sorted) key += x + ",";
    eval.insert(key + "=" + t.metadata.at("target"));
  }
  EXPECT_GT(differ, 1000);
  EXPECT_GT(eval.size(), 30u);
  for (const auto& k : eval) EXPECT_EQ(train.count(k), 0u) << k;
}

TEST(countdown_tasks, difficulty_options_shape_the_instances) {
  countdown_options o;
  o.min_numbers = o.max_numbers = 6;
  o.max_number = 20;
  o.min_target = 200;
  o.max_target = 500;
  countdown_tasks gen(o, 1);
  for (int i = 0; i < 50; ++i) {
    task t = gen.at(split::train, i);
    std::stringstream ss(t.metadata.at("numbers"));
    int n = 0;
    for (std::int64_t x; ss >> x; ++n) EXPECT_TRUE(x >= 1 && x <= 20) << x;
    EXPECT_EQ(n, 6);
    const auto target = std::stoll(t.metadata.at("target"));
    EXPECT_TRUE(target >= 200 && target <= 500) << target;
  }
}

}  // namespace
}  // namespace troupe
