// The env host actor (actors/env_host.hpp) with a pool of `external` instances: what the
// GRPO coordinator sees when the environment server misbehaves. A failed episode is a
// result with failed = true and the bridge's reason, never a crash of the host, and
// the same pool judges the next episodes once the server answers again.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/env_host.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/system.hpp"
#include "tests/support/env_server.hpp"

namespace troupe {
namespace {

using namespace std::chrono_literals;

struct external_env_host : ::testing::Test {
  void SetUp() override {
    if (!testing::python_has_zmq_and_msgpack())
      GTEST_SKIP() << "/usr/bin/python3 lacks zmq or msgpack (apt-get install python3-zmq python3-msgpack)";
    system_section s;
    s.threads = 2;
    configure_actor_system(cfg, s);
  }
  caf::actor_system_config cfg;
  testing::server_process server;
};

episode_result judge(caf::scoped_actor& self, const env_host_actor& host, const std::string& answer,
                     const std::string& action) {
  episode_result out;
  self->request(host, 10s, judge_atom::value, episode_request{{"arithmetic/1", "12+34=", {{"answer", answer}}}, action})
    .receive([&](episode_result& r) { out = std::move(r); }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  return out;
}

TEST_F(external_env_host, a_hung_or_crashed_server_fails_episodes_and_the_pool_recovers) {
  server.start({"--port", "0", "--hang-steps", "1", "--crash-after-steps", "2"});
  caf::actor_system sys{cfg};
  env_host_options o;
  o.env = "external";
  o.options = {{"endpoint", server.endpoint}, {"env", "arithmetic"}, {"timeout_ms", "1000"},
               {"connect_timeout_ms", "1000"}};
  o.pool = 1;
  auto host = spawn_env_host(sys, o);
  caf::scoped_actor self{sys};

  auto hung = judge(self, host, "46", "46");
  EXPECT_TRUE(hung.failed);
  EXPECT_EQ(hung.error, "external env 'arithmetic' at " + server.endpoint + ": no reply to step within 1000 ms");

  auto ok = judge(self, host, "46", "46\n");
  EXPECT_FALSE(ok.failed) << ok.error;
  EXPECT_EQ(ok.verdict.rewards.at("correct"), 1.0);
  EXPECT_EQ(judge(self, host, "46", "45").verdict.rewards.at("correct"), 0.0);

  auto crashed = judge(self, host, "46", "46");  // the server exits on this step
  EXPECT_TRUE(crashed.failed);
  EXPECT_NE(crashed.error.find("the connection dropped"), std::string::npos) << crashed.error;

  auto down = judge(self, host, "46", "46");
  EXPECT_TRUE(down.failed);
  EXPECT_NE(down.error.find("cannot connect within 1000 ms"), std::string::npos) << down.error;

  server.start({"--port", server.port});
  auto back = judge(self, host, "46", "46");
  EXPECT_FALSE(back.failed) << back.error;
  EXPECT_EQ(back.verdict.rewards.at("correct"), 1.0);
  self->send_exit(host, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace troupe
