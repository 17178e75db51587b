#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"
#include "environments/guess_number.hpp"

namespace troupe {
namespace {

task secret(int s) { return {"g", "guess", {{"secret", std::to_string(s)}, {"low", "1"}, {"high", "100"}}}; }

TEST(guess_number_env, answers_higher_and_lower_until_correct) {
  auto env = make_environment("guess_number");
  auto obs = env->reset(secret(37));
  EXPECT_EQ(obs.stop_strings, std::vector<std::string>{"</guess>"});
  auto r = env->step("<guess>50</guess>");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.next.text, "lower (6 guesses left)");
  EXPECT_EQ(r.next.stop_strings, std::vector<std::string>{"</guess>"});
  EXPECT_TRUE(r.rewards.empty()) << "rewards come once, on the final step";
  r = env->step("I think <guess>25</guess>");
  EXPECT_EQ(r.next.text, "higher (5 guesses left)");
  EXPECT_EQ(r.info["feedback"], "higher");
  r = env->step("<guess> 37 </guess>");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.info["feedback"], "correct");
  EXPECT_EQ(r.rewards["solved"], 1.0);
  EXPECT_DOUBLE_EQ(r.rewards["efficiency"], (7.0 - 3) / 6);
  EXPECT_EQ(r.rewards["format"], 1.0);
  EXPECT_EQ(r.info["turns"], "3");
  EXPECT_EQ(r.info["reason"], "");
}

TEST(guess_number_env, a_first_guess_hit_earns_the_full_efficiency_bonus_unless_turned_off) {
  auto env = make_environment("guess_number");
  env->reset(secret(50));
  auto r = env->step("<guess>50</guess>");
  EXPECT_EQ(r.rewards["efficiency"], 1.0);
  auto plain = make_environment("guess_number", {{"efficiency_bonus", "false"}});
  plain->reset(secret(50));
  EXPECT_EQ(plain->step("<guess>50</guess>").rewards["efficiency"], 0.0);
}

TEST(guess_number_env, invalid_guesses_use_a_turn_and_explain_why) {
  auto env = make_environment("guess_number", {{"max_turns", "3"}});
  env->reset(secret(10));
  auto r = env->step("fifty");
  EXPECT_FALSE(r.done);
  EXPECT_EQ(r.info["feedback"], "invalid");
  EXPECT_EQ(r.info["reason"], "no <guess> tag");
  EXPECT_EQ(r.next.text, "invalid guess: no <guess> tag; write <guess>N</guess> (2 guesses left)");
  r = env->step("<guess>500</guess>");
  EXPECT_EQ(r.info["reason"], "500 is outside 1..100");
  r = env->step("<guess>1e3</guess>");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.rewards["solved"], 0.0);
  EXPECT_EQ(r.rewards["efficiency"], 0.0);
  EXPECT_EQ(r.rewards["format"], 0.0);
  EXPECT_EQ(r.info["reason"], "out of turns");
  EXPECT_EQ(r.info["secret"], "10");
}

TEST(guess_number_env, running_out_of_turns_ends_unsolved_with_the_format_share) {
  auto env = make_environment("guess_number", {{"max_turns", "2"}});
  env->reset(secret(10));
  EXPECT_FALSE(env->step("<guess>50</guess>").done);
  auto r = env->step("<guess>x</guess>");
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.rewards["solved"], 0.0);
  EXPECT_EQ(r.rewards["format"], 0.5);
}

TEST(guess_number_env, bad_tasks_and_options_are_input_errors) {
  auto env = make_environment("guess_number");
  EXPECT_THROW(env->reset({"x", "", {{"secret", "200"}, {"low", "1"}, {"high", "100"}}}), input_error);
  EXPECT_THROW(env->reset({"x", "", {{"low", "1"}, {"high", "100"}}}), input_error);
  EXPECT_THROW(make_environment("guess_number", {{"low", "5"}, {"high", "5"}}), input_error);
  EXPECT_THROW(make_environment("guess_number", {{"max_turns", "0"}}), input_error);
}

TEST(guess_number_tasks, are_deterministic_in_range_and_disjoint_across_splits) {
  guess_number_options o;
  o.high = 50;
  o.eval_fraction = 0.2;
  guess_number_tasks a(o, 4), b(o, 4);
  std::set<std::string> train, eval;
  for (int i = 0; i < 500; ++i) {
    task t = a.at(split::train, i);
    EXPECT_EQ(t.metadata, b.at(split::train, i).metadata);
    const int s = std::stoi(t.metadata.at("secret"));
    EXPECT_TRUE(s >= 1 && s <= 50);
    train.insert(t.metadata.at("secret"));
  }
  for (int i = 0; i < 100; ++i) eval.insert(a.at(split::eval, i).metadata.at("secret"));
  EXPECT_GT(eval.size(), 3u);
  for (const auto& s : eval) EXPECT_EQ(train.count(s), 0u) << s;
  EXPECT_EQ(train.size() + eval.size(), 50u) << "every secret is in exactly one split";
}

TEST(guess_number_tasks, a_space_too_small_for_the_holdout_is_an_error_not_a_hang) {
  guess_number_options o;
  o.low = 1;
  o.high = 2;
  o.eval_fraction = 0.001;
  guess_number_tasks g(o, 1);
  // Two secrets and a 0.1% holdout: seed 1 holds out neither.
  ASSERT_FALSE(in_eval_split(1, "1..2:1", 0.001) || in_eval_split(1, "1..2:2", 0.001));
  EXPECT_THROW(g.at(split::eval, 0), input_error);
  EXPECT_NO_THROW(g.at(split::train, 0));
}

}  // namespace
}  // namespace troupe
