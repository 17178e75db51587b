#include <gtest/gtest.h>

#include "core/error.hpp"
#include "environments/episode.hpp"
#include "environments/guess_number.hpp"

namespace troupe {
namespace {

// A scripted policy: replies in order, and records what it was shown.
struct scripted {
  explicit scripted(std::vector<std::string> r = {}) : replies(std::move(r)) {}
  std::vector<std::string> replies;
  std::vector<std::size_t> seen_turns;
  std::vector<std::vector<std::string>> seen_stops;
  std::size_t next = 0;
  policy_fn fn() {
    return [this](const std::vector<turn>& so_far, const std::vector<std::string>& stop) {
      seen_turns.push_back(so_far.size());
      seen_stops.push_back(stop);
      return next < replies.size() ? replies[next++] : std::string("<guess>1</guess>");
    };
  }
};

task secret(int s) { return {"g/1", "Guess.", {{"secret", std::to_string(s)}, {"low", "1"}, {"high", "100"}}}; }

TEST(episode_driver, alternates_observations_and_actions_until_done) {
  auto env = make_environment("guess_number");
  scripted p({"<guess>50</guess>", "<guess>25</guess>", "<guess>37</guess>"});
  transcript tr = episode_driver().run(*env, secret(37), p.fn());
  EXPECT_EQ(tr.task_id, "g/1");
  EXPECT_EQ(tr.end, episode_end::done);
  EXPECT_EQ(tr.actions, 3);
  ASSERT_EQ(tr.turns.size(), 6u);
  const std::vector<std::pair<turn_role, std::string>> want = {
      {turn_role::observation, "Guess."}, {turn_role::action, "<guess>50</guess>"},
      {turn_role::observation, "lower (6 guesses left)"}, {turn_role::action, "<guess>25</guess>"},
      {turn_role::observation, "higher (5 guesses left)"}, {turn_role::action, "<guess>37</guess>"}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(tr.turns[i].role, want[i].first) << i;
    EXPECT_EQ(tr.turns[i].text, want[i].second) << i;
  }
  EXPECT_EQ(tr.turns[0].stop_strings, std::vector<std::string>{"</guess>"});
  EXPECT_EQ(p.seen_turns, (std::vector<std::size_t>{1, 3, 5})) << "the policy sees the conversation so far";
  EXPECT_EQ(p.seen_stops[1], std::vector<std::string>{"</guess>"});
  EXPECT_EQ(tr.rewards.at("solved"), 1.0);
  EXPECT_DOUBLE_EQ(tr.rewards.at("efficiency"), 4.0 / 6);
  EXPECT_EQ(tr.turns[5].rewards.at("solved"), 1.0) << "each action keeps its step's rewards";
  EXPECT_EQ(tr.turns[1].info.at("feedback"), "lower");
  EXPECT_EQ(tr.info.at("feedback"), "correct") << "later steps win";
  EXPECT_EQ(conversation_text(tr.turns),
            "Guess.<guess>50</guess>lower (6 guesses left)<guess>25</guess>higher (5 guesses left)<guess>37</guess>");
}

// Rewards on every step, to check that the driver sums them.
class counting_env : public environment {
 public:
  observation reset(const task&) override {
    steps_ = 0;
    return {"start", {"."}};
  }
  step_result step(const std::string& action) override {
    if (action == "throw") throw std::runtime_error("tool crashed");
    step_result r;
    r.rewards["point"] = 1;
    r.rewards["bonus"] = ++steps_ == 3 ? 0.5 : 0;
    r.done = steps_ == 3;
    r.next = {"obs" + std::to_string(steps_), {"!"}};
    return r;
  }

 private:
  int steps_ = 0;
};

TEST(episode_driver, sums_reward_components_over_steps) {
  counting_env env;
  transcript tr = episode_driver().run(env, {"t", "", {}}, [](const std::vector<turn>&, const std::vector<std::string>&) {
    return std::string("a");
  });
  EXPECT_EQ(tr.end, episode_end::done);
  EXPECT_EQ(tr.actions, 3);
  EXPECT_EQ(tr.rewards.at("point"), 3.0);
  EXPECT_EQ(tr.rewards.at("bonus"), 0.5);
  EXPECT_EQ(tr.turns.size(), 6u) << "the final step's observation is left out";
  EXPECT_EQ(tr.turns[2].stop_strings, std::vector<std::string>{"!"});
}

TEST(episode_driver, stops_at_max_turns) {
  auto env = make_environment("guess_number", {{"max_turns", "20"}});
  episode_options o;
  o.max_turns = 4;
  scripted p;  // always guesses 1
  transcript tr = episode_driver(o).run(*env, secret(90), p.fn());
  EXPECT_EQ(tr.end, episode_end::max_turns);
  EXPECT_EQ(tr.actions, 4);
  EXPECT_EQ(tr.turns.size(), 9u);
  EXPECT_EQ(tr.turns.back().role, turn_role::observation) << "the observation awaiting a fifth action";
  EXPECT_TRUE(tr.rewards.empty());
  EXPECT_THROW(episode_driver(episode_options{0}), input_error);
}

TEST(episode_driver, an_environment_that_throws_fails_the_episode_not_the_caller) {
  counting_env env;
  scripted p({"a", "throw"});
  transcript tr = episode_driver().run(env, {"t", "", {}}, p.fn());
  EXPECT_EQ(tr.end, episode_end::failed);
  EXPECT_EQ(tr.error, "tool crashed");
  EXPECT_EQ(tr.actions, 2);
  EXPECT_EQ(tr.turns.back().text, "throw");
  auto guess = make_environment("guess_number");
  tr = episode_driver().run(*guess, {"bad", "", {}}, p.fn());
  EXPECT_EQ(tr.end, episode_end::failed) << "a malformed task";
  EXPECT_NE(tr.error.find("metadata.secret"), std::string::npos) << tr.error;
  EXPECT_TRUE(tr.turns.empty());
  EXPECT_STREQ(episode_end_name(tr.end), "failed");
}

TEST(episode_driver, runs_single_turn_environments_in_one_step) {
  auto env = make_environment("countdown");
  transcript tr = episode_driver().run(*env, {"c", "Reach 80.", {{"numbers", "25 5 4"}, {"target", "80"}}},
                                       [](const std::vector<turn>&, const std::vector<std::string>& stop) {
                                         EXPECT_EQ(stop, std::vector<std::string>{"</answer>"});
                                         return std::string("<answer>(25-5)*4</answer>");
                                       });
  EXPECT_EQ(tr.end, episode_end::done);
  EXPECT_EQ(tr.turns.size(), 2u);
  EXPECT_EQ(tr.rewards.at("correct"), 1.0);
}

TEST(episode_driver, drives_a_tool_session) {
  auto env = make_environment("calculator");
  scripted p({"<tool>calc: 12*7</tool>", "<answer>84</answer>"});
  transcript tr = episode_driver().run(*env, {"q", "12 boxes of 7?", {{"answer", "84"}}}, p.fn());
  ASSERT_EQ(tr.turns.size(), 4u);
  EXPECT_EQ(tr.turns[2].text, "<result>84</result>");
  EXPECT_EQ(tr.turns[2].role, turn_role::observation);
  EXPECT_EQ(tr.rewards.at("correct"), 1.0);
  EXPECT_EQ(tr.rewards.at("tool_format"), 1.0);
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

TEST(episode_driver, runs_a_batch_in_lockstep_with_one_policy_call_per_turn) {
  std::vector<std::unique_ptr<environment>> owned;
  std::vector<environment*> envs;
  std::vector<task> tasks;
  for (int s : {50, 25, 75}) {
    owned.push_back(make_environment("guess_number"));
    envs.push_back(owned.back().get());
    tasks.push_back({"g" + std::to_string(s), "Guess.", {{"secret", std::to_string(s)}, {"low", "1"}, {"high", "100"}}});
  }
  // Binary search over [1, 100], reading the feedback from the conversation.
  std::vector<std::size_t> batch_sizes;
  auto policy = [&](const std::vector<policy_request>& reqs) {
    batch_sizes.push_back(reqs.size());
    std::vector<std::string> out;
    for (const auto& r : reqs) {
      int lo = 1, hi = 100;
      const auto& c = *r.conversation;
      for (std::size_t k = 1; k + 1 < c.size(); k += 2) {
        const int g = std::stoi(c[k].text.substr(7));
        if (c[k + 1].text.rfind("higher", 0) == 0) lo = g + 1;
        else hi = g - 1;
      }
      out.push_back("<guess>" + std::to_string((lo + hi) / 2) + "</guess>");
    }
    return out;
  };
  auto trs = episode_driver().run_batch(envs, tasks, policy);
  ASSERT_EQ(trs.size(), 3u);
  EXPECT_EQ(trs[0].actions, 1) << "50 at once";
  EXPECT_EQ(trs[1].actions, 2) << "50, then 25";
  EXPECT_EQ(trs[2].actions, 2) << "50, then 75";
  for (const auto& tr : trs) {
    EXPECT_EQ(tr.end, episode_end::done);
    EXPECT_EQ(tr.rewards.at("solved"), 1.0) << tr.task_id;
  }
  EXPECT_EQ(trs[1].task_id, "g25");
  EXPECT_EQ(batch_sizes, (std::vector<std::size_t>{3, 2})) << "finished episodes drop out of the batch";
  EXPECT_THROW(episode_driver().run_batch(envs, {tasks[0]}, policy), std::invalid_argument);
  EXPECT_THROW(episode_driver().run_batch(envs, tasks, [](const std::vector<policy_request>&) {
                 return std::vector<std::string>{"one"};
               }),
               std::invalid_argument);
}

}  // namespace
}  // namespace troupe
