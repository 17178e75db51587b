// The custom-environment example (examples/custom_env/), loaded as a user would load it.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "environments/plugin.hpp"
#include "environments/task_source.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

TEST(environment_plugin, registers_the_example_environment_and_its_generator) {
  auto loaded = load_environment_plugin(TROUPE_CUSTOM_ENV_MODULE);
  bool found = false;
  for (const auto& e : registered_environments()) found |= e.name == "word_reverse";
  ASSERT_TRUE(found);
  EXPECT_TRUE(has_task_generator("word_reverse"));
  // Loading again is harmless and registers nothing new.
  EXPECT_TRUE(load_environment_plugin(TROUPE_CUSTOM_ENV_MODULE).environments.empty());
  (void)loaded;
}

// What an episode left behind: its actions, the observations between them, and every
// step's rewards summed.
struct played {
  int actions = 0;
  std::vector<std::string> hints;
  std::map<std::string, double> rewards;
};

// Plays `t` as the env host does (reset, then step until done), with a scripted policy
// that sees the turn number and the stop strings.
template <class Policy>
played play(environment& env, const task& t, Policy policy) {
  played out;
  observation obs = env.reset(t);
  for (int turn = 0; turn < 16; ++turn) {
    step_result r = env.step(policy(turn, obs.stop_strings));
    ++out.actions;
    for (const auto& [name, v] : r.rewards) out.rewards[name] += v;
    if (r.done) return out;
    obs = r.next;
    out.hints.push_back(obs.text);
  }
  ADD_FAILURE() << "task " << t.id << " never ended";
  return out;
}

TEST(environment_plugin, the_example_runs_episodes_with_a_scripted_policy) {
  load_environment_plugin(TROUPE_CUSTOM_ENV_MODULE);
  auto env = make_environment("word_reverse");
  auto tasks = make_task_source("word_reverse", {}, 3);
  int right_first = 0, right_second = 0, wrong = 0;
  for (int i = 0; i < 12; ++i) {
    task t = tasks->at(split::train, i);
    const std::string word = t.metadata.at("word");
    // Right at once on every third task, right after the hint on every third, never on the rest.
    const int style = i % 3;
    played ep = play(*env, t, [&](int turn, const std::vector<std::string>& stop) {
      EXPECT_EQ(stop, std::vector<std::string>{"\n"});
      if (style == 0 || (style == 1 && turn > 0)) return std::string(word.rbegin(), word.rend()) + "\n";
      return std::string("nope\n");
    });
    if (style == 0) {
      EXPECT_EQ(ep.actions, 1);
      EXPECT_EQ(ep.rewards.at("first_try"), 1.0);
      right_first += ep.rewards.at("correct") == 1.0;
    } else if (style == 1) {
      EXPECT_EQ(ep.actions, 2);
      ASSERT_EQ(ep.hints.size(), 1u);
      EXPECT_EQ(ep.hints[0].rfind("Not quite; it starts with '", 0), 0u) << ep.hints[0];
      EXPECT_EQ(ep.rewards.at("first_try"), 0.0);
      right_second += ep.rewards.at("correct") == 1.0;
    } else {
      EXPECT_EQ(ep.actions, 2) << "two tries by default";
      wrong += ep.rewards.at("correct") == 0.0;
    }
  }
  EXPECT_EQ(right_first, 4);
  EXPECT_EQ(right_second, 4);
  EXPECT_EQ(wrong, 4);
  EXPECT_THROW(make_environment("word_reverse", {{"max_tries", "0"}}), input_error) << "its options are checked";
}

TEST(environment_plugin, a_module_that_cannot_load_is_an_input_error_naming_it) {
  testing::temp_dir dir;
  const std::string bogus = dir.write("libbogus.so", "not an ELF file");
  try {
    load_environment_plugin(bogus);
    FAIL();
  } catch (const input_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("environment plugin " + bogus + ": cannot load: ", 0), 0u) << what;
    EXPECT_NE(what.find("libbogus.so"), std::string::npos) << "dlerror's text follows: " << what;
  }
  EXPECT_THROW(load_environment_plugin(dir / "missing.so"), input_error);
  EXPECT_THROW(load_environment_plugin("missing_relative.so"), input_error);
}

}  // namespace
}  // namespace troupe
