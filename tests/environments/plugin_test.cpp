// The custom-environment example (examples/custom_env/), loaded as a user would load it.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "environments/episode.hpp"
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

TEST(environment_plugin, the_example_runs_episodes_with_a_scripted_policy) {
  load_environment_plugin(TROUPE_CUSTOM_ENV_MODULE);
  auto env = make_environment("word_reverse");
  auto tasks = make_task_source("word_reverse", {}, 3);
  episode_driver driver;
  int right_first = 0, right_second = 0, wrong = 0;
  for (int i = 0; i < 12; ++i) {
    task t = tasks->at(split::train, i);
    const std::string word = t.metadata.at("word");
    // Right at once on every third task, right after the hint on every third, never on the rest.
    const int style = i % 3;
    transcript tr = driver.run(*env, t, [&](const std::vector<turn>& so_far, const std::vector<std::string>& stop) {
      EXPECT_EQ(stop, std::vector<std::string>{"\n"});
      const bool first = so_far.size() == 1;
      if (style == 0 || (style == 1 && !first)) return std::string(word.rbegin(), word.rend()) + "\n";
      return std::string("nope\n");
    });
    ASSERT_EQ(tr.end, episode_end::done) << tr.error;
    if (style == 0) {
      EXPECT_EQ(tr.actions, 1);
      EXPECT_EQ(tr.rewards.at("first_try"), 1.0);
      right_first += tr.rewards.at("correct") == 1.0;
    } else if (style == 1) {
      EXPECT_EQ(tr.actions, 2);
      EXPECT_EQ(tr.turns[2].text.rfind("Not quite; it starts with '", 0), 0u) << tr.turns[2].text;
      EXPECT_EQ(tr.rewards.at("first_try"), 0.0);
      right_second += tr.rewards.at("correct") == 1.0;
    } else {
      EXPECT_EQ(tr.actions, 2) << "two tries by default";
      wrong += tr.rewards.at("correct") == 0.0;
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
