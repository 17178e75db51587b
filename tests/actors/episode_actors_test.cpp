// The env host, guardrail and reward actors that the GRPO coordinator drives.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "actors/actor_pool.hpp"
#include "actors/protocol/atoms.hpp"
#include "actors/env_host.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/guardrail_actor.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/reward_actor.hpp"
#include "actors/store_actor.hpp"
#include "actors/system.hpp"
#include "tests/support/temp_dir.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>

namespace troupe {
namespace {

using namespace std::chrono_literals;

// Where tasks whose id ends in "slow" wait: shut while a test wants them stuck, opened
// by that test (a slow_gate_shut, declared after its actor system, so that no thread
// is still blocked when the system ends).
struct gate {
  std::mutex m;
  std::condition_variable cv;
  bool open = true;
  void wait() {
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return open; });
  }
  void set(bool o) {
    {
      std::lock_guard<std::mutex> lock(m);
      open = o;
    }
    cv.notify_all();
  }
};
gate& slow_gate() {
  static gate g;
  return g;
}
struct slow_gate_shut {
  slow_gate_shut() { slow_gate().set(false); }
  ~slow_gate_shut() { slow_gate().set(true); }
};

// Throws for tasks whose id ends in 7; waits at the slow gate for ids ending in "slow".
class flaky_env : public environment {
 public:
  explicit flaky_env(const environment_options&) {}
  observation reset(const task& t) override {
    if (t.id.back() == '7') throw std::runtime_error("cannot judge task " + t.id);
    if (t.id.size() >= 4 && t.id.substr(t.id.size() - 4) == "slow") slow_gate().wait();
    return {t.prompt, {}};
  }
  step_result step(const std::string& action) override {
    // Not a std::exception: it escapes the worker's handler and crashes the actor.
    if (action == "crash") throw 42;
    step_result r;
    r.rewards["correct"] = action == "ok" ? 1.0 : 0.0;
    return r;
  }
};
TROUPE_REGISTER_ENVIRONMENT("test_flaky", flaky_env, "throws for ids ending in 7");

struct episode_actors : ::testing::Test {
  episode_actors() {
    system_section s;
    s.threads = 2;
    configure_actor_system(cfg, s);
  }
  caf::actor_system_config cfg;
};

episode_result judge(caf::scoped_actor& self, const env_host_actor& host, task t, std::string action) {
  episode_result out;
  self->request(host, 5s, judge_atom::value, episode_request{std::move(t), std::move(action)})
    .receive([&](episode_result& r) { out = std::move(r); }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  return out;
}

TEST_F(episode_actors, env_host_judges_episodes_and_records_throwing_ones_as_failed) {
  caf::actor_system sys{cfg};
  env_host_options o;
  o.env = "test_flaky";
  o.pool = 2;
  auto host = spawn_env_host(sys, o);
  caf::scoped_actor self{sys};
  auto ok = judge(self, host, {"t1", "p", {}}, "ok");
  EXPECT_FALSE(ok.failed);
  EXPECT_EQ(ok.verdict.rewards["correct"], 1.0);
  auto bad = judge(self, host, {"t7", "p", {}}, "ok");
  EXPECT_TRUE(bad.failed);
  EXPECT_EQ(bad.task_id, "t7");
  EXPECT_NE(bad.error.find("cannot judge task t7"), std::string::npos) << bad.error;
  EXPECT_FALSE(judge(self, host, {"t8", "p", {}}, "no").failed) << "the host goes on after a failure";
  self->send_exit(host, caf::exit_reason::user_shutdown);
}

TEST_F(episode_actors, env_host_times_out_a_slow_episode_as_failed) {
  caf::actor_system sys{cfg};
  env_host_options o;
  o.env = "test_flaky";
  o.pool = 1;
  o.episode_timeout = 100ms;
  auto host = spawn_env_host(sys, o);
  caf::scoped_actor self{sys};
  slow_gate_shut stuck_until_the_end;
  auto r = judge(self, host, {"tslow", "p", {}}, "ok");
  EXPECT_TRUE(r.failed);
  EXPECT_NE(r.error.find("request_timeout"), std::string::npos) << r.error;
  self->send_exit(host, caf::exit_reason::user_shutdown);
}

TEST_F(episode_actors, env_host_restarts_a_crashed_worker_and_replaces_a_stuck_one_with_events) {
  testing::temp_dir dir;
  caf::actor_system sys{cfg};
  auto store = spawn_store_actor(sys, run_store::create(dir / "s.sqlite", run_info{}, ""));
  env_host_options o;
  o.env = "test_flaky";
  o.pool = 1;
  o.episode_timeout = 1s;  // what the stuck episode waits, and ample for the others
  o.store = store;
  auto host = spawn_env_host(sys, o);
  caf::scoped_actor self{sys};
  slow_gate_shut stuck_until_the_end;

  auto crashed = judge(self, host, {"t1", "p", {}}, "crash");
  EXPECT_TRUE(crashed.failed);
  EXPECT_NE(crashed.error.find("unknown exception"), std::string::npos) << crashed.error;
  EXPECT_FALSE(judge(self, host, {"t2", "p", {}}, "ok").failed) << "the restarted worker judges the next episode";

  // One instance, stuck until the test ends: without a replacement the next episode
  // would wait behind it and time out too.
  auto stuck = judge(self, host, {"tslow", "p", {}}, "ok");
  EXPECT_TRUE(stuck.failed);
  EXPECT_NE(stuck.error.find("timed out after 1000 ms"), std::string::npos) << stuck.error;
  EXPECT_FALSE(judge(self, host, {"t3", "p", {}}, "ok").failed);

  self->send_exit(host, caf::exit_reason::user_shutdown);
  self->send_exit(store, caf::exit_reason::user_shutdown);
  self->wait_for(store);
  auto events = run_store::open(dir / "s.sqlite", store_mode::read_only).events();
  std::set<std::string> kinds;
  for (const auto& e : events) kinds.insert(e.kind);
  EXPECT_EQ(kinds, (std::set<std::string>{"restart", "replace"}));
}

// Two hosts behind a pool; one is killed while it owes slow episodes (as a worker
// process dies): every episode is still answered, by the other host, and the loss is
// recorded. A multi-turn episode opened on the lost host fails with that reason.
TEST_F(episode_actors, env_pool_hands_a_lost_hosts_episodes_to_the_other_and_records_the_loss) {
  testing::temp_dir dir;
  caf::actor_system sys{cfg};
  auto store = spawn_store_actor(sys, run_store::create(dir / "s.sqlite", run_info{}, ""));
  env_host_options o;
  o.env = "test_flaky";
  o.pool = 5;  // four for stuck episodes, one free for the multi-turn one
  o.episode_timeout = 30s;
  auto a = spawn_env_host(sys, o), b = spawn_env_host(sys, o);
  // Members are plain handles, as they come from cluster workers.
  auto pool = spawn_env_pool(sys, {{{caf::actor_cast<caf::actor>(a), "local"}, {caf::actor_cast<caf::actor>(b), "w1"}}, store});
  caf::scoped_actor self{sys};

  // Episodes 0..7 alternate between the hosts and are stuck at the gate; open episode
  // 100 lands on `a` (the round robin is back at it after eight), on its free worker.
  auto gate_shut = std::make_unique<slow_gate_shut>();
  std::vector<caf::response_handle<caf::blocking_actor, caf::detail::type_list<episode_result>, true>> pending;
  for (int i = 0; i < 8; ++i)
    pending.push_back(self->request(pool, 5s, judge_atom::value, episode_request{{"t" + std::to_string(i) + "slow", "p", {}}, "ok"}));
  observation first;
  self->request(pool, 5s, open_atom::value, std::int64_t{100}, task{"t1", "p", {}})
    .receive([&](observation& x) { first = x; }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  self->send_exit(a, caf::exit_reason::kill);
  gate_shut.reset();  // a was lost owing its four; now the episodes may finish
  int answered = 0;
  for (auto& p : pending)
    p.receive(
      [&](episode_result& r) {
        EXPECT_FALSE(r.failed) << r.error;
        EXPECT_EQ(r.verdict.rewards["correct"], 1.0);
        ++answered;
      },
      [&](caf::error& e) { ADD_FAILURE() << render(e); });
  EXPECT_EQ(answered, 8);

  caf::error lost;
  self->request(pool, 5s, step_atom::value, std::int64_t{100}, std::string("ok"))
    .receive([](step_result&) { ADD_FAILURE() << "stepped an episode of a lost host"; }, [&](caf::error& e) { lost = e; });
  EXPECT_NE(render(lost).find("was lost"), std::string::npos) << render(lost);
  std::vector<std::string> live;
  self->request(pool, 5s, status_atom::value).receive([&](std::vector<std::string>& x) { live = x; }, [](caf::error&) {});
  EXPECT_EQ(live, std::vector<std::string>{"w1"});
  // Episodes opened now go to the host that is left.
  self->request(pool, 5s, open_atom::value, std::int64_t{101}, task{"t2", "p", {}})
    .receive([](observation&) {}, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  self->request(pool, 5s, step_atom::value, std::int64_t{101}, std::string("ok"))
    .receive([](step_result& r) { EXPECT_EQ(r.rewards["correct"], 1.0); }, [&](caf::error& e) { ADD_FAILURE() << render(e); });

  self->send_exit(pool, caf::exit_reason::user_shutdown);
  self->send_exit(b, caf::exit_reason::user_shutdown);
  self->send_exit(store, caf::exit_reason::user_shutdown);
  self->wait_for(store);
  auto events = run_store::open(dir / "s.sqlite", store_mode::read_only).events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "lost");
  EXPECT_NE(events[0].message.find("env host 0 (local) lost"), std::string::npos) << events[0].message;
}

TEST_F(episode_actors, env_host_rejects_unknown_environments_before_spawning) {
  caf::actor_system sys{cfg};
  env_host_options o;
  o.env = "nope";
  EXPECT_THROW(spawn_env_host(sys, o), input_error);
}

TEST_F(episode_actors, guardrail_and_reward_actors_turn_verdicts_into_components) {
  caf::actor_system sys{cfg};
  guardrails_section g;
  g.max_output_chars = 3;
  g.length_penalty = 0.5;
  auto rails = spawn_guardrail_actor(sys, g);
  reward_section rs;
  rs.weights = {"correct:1", "rail/max_length:1"};
  auto reward = spawn_reward_actor(sys, rs, /*failure_reward=*/-1.0);
  caf::scoped_actor self{sys};
  std::vector<rail_verdict> verdicts;
  self->request(rails, 5s, check_atom::value, rail_stage::output, std::string("12345"))
    .receive([&](std::vector<rail_verdict>& v) { verdicts = v; }, [&](caf::error& e) { FAIL() << render(e); });
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].action, rail_action::penalize);
  reward_result r;
  self->request(reward, 5s, score_atom::value, reward_request{{{"correct", 1.0}}, verdicts, false})
    .receive([&](reward_result& x) { r = x; }, [&](caf::error& e) { FAIL() << render(e); });
  EXPECT_DOUBLE_EQ(r.components["rail/max_length"], -0.5);
  EXPECT_DOUBLE_EQ(r.total, 0.5);
  self->request(reward, 5s, score_atom::value, reward_request{{{"correct", 1.0}}, {}, true})
    .receive([&](reward_result& x) { r = x; }, [&](caf::error& e) { FAIL() << render(e); });
  EXPECT_DOUBLE_EQ(r.total, -1.0) << "a failed episode scores the failure reward";
  self->send_exit(rails, caf::exit_reason::user_shutdown);
  self->send_exit(reward, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace troupe
