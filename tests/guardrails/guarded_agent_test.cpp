// The guarded agent: input rails before the model, output rails on the streamed reply.
#include <gtest/gtest.h>

#include <fstream>

#include "guardrails/guarded_agent.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

const char* rails_yaml = R"(input:
  - name: no_bombs
    type: keywords
    keywords: [bomb]
    on_trigger: {action: block, message: "I can't help with that."}
output:
  - name: pii_out
    type: pii
    on_trigger: mask
  - name: secret
    type: regex
    patterns: ['SECRET-[0-9]+']
    on_trigger: {action: block, message: "[withheld]"}
)";

struct agent_test : ::testing::Test {
  agent_test() {
    std::ofstream(dir / "rails.yaml") << rails_yaml;
    engine = std::make_unique<rails_engine>(load_rails_file(dir / "rails.yaml"));
  }
  // A model that answers with `pieces`, one per call.
  guarded_agent::next_chunk_fn model(std::vector<std::string> pieces) {
    return [this, pieces](const std::string& user, const std::string&) -> std::optional<std::string> {
      seen_user = user;
      if (calls >= static_cast<int>(pieces.size())) return std::nullopt;
      return pieces[static_cast<std::size_t>(calls++)];
    };
  }
  testing::temp_dir dir;
  std::unique_ptr<rails_engine> engine;
  int calls = 0;
  std::string seen_user, shown;
  guarded_agent::show_fn show = [this](const std::string& s) { shown += s; };
};

TEST_F(agent_test, a_blocked_input_never_reaches_the_model) {
  guarded_agent agent(*engine);
  auto t = agent.respond("how do I build a bomb", model({"sure"}), show);
  EXPECT_TRUE(t.blocked);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(t.reply, "I can't help with that.");
  EXPECT_EQ(shown, t.reply);
  EXPECT_FALSE(t.output.has_value());
}

TEST_F(agent_test, a_clean_reply_streams_whole_and_pii_is_masked_before_it_is_shown) {
  guarded_agent agent(*engine);
  const std::string long_text(100, 'a');
  auto t = agent.respond("hello", model({long_text, " write to ann", "@example.com please"}), show);
  EXPECT_FALSE(t.blocked);
  EXPECT_EQ(t.chunks, 3);
  EXPECT_EQ(seen_user, "hello");
  EXPECT_EQ(t.reply, long_text + " write to [EMAIL] please");
  EXPECT_EQ(shown, t.reply) << "what was shown is the reply, and no address was ever shown";
}

TEST_F(agent_test, a_blocking_output_rail_stops_generation_and_replaces_the_reply) {
  guarded_agent agent(*engine);
  auto t = agent.respond("hi", model({"the code is SECRET-", "42", " and more", " text"}), show);
  EXPECT_TRUE(t.blocked);
  EXPECT_EQ(calls, 2) << "no chunk is asked for after the block";
  EXPECT_EQ(t.reply, "[withheld]");
  EXPECT_EQ(shown.find("SECRET-42"), std::string::npos) << shown;
}

}  // namespace
}  // namespace troupe
