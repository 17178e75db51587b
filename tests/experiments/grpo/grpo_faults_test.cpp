// The GRPO loop under faults: an environment that throws for some tasks and crashes its
// actor for one. The run must finish, count and record the failed episodes, restart the
// crashed worker with an event, and complete every step.
#include <gtest/gtest.h>

#include <caf/all.hpp>

#include <atomic>
#include <sstream>

#include "experiments/experiment.hpp"
#include "experiments/grpo/grpo.hpp"
#include "actors/store_actor.hpp"
#include "actors/system.hpp"
#include "core/config_tree.hpp"
#include "core/run_dir.hpp"
#include "environments/task_source.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

// Judges like `arithmetic`, but throws for every task whose index is a multiple of 5
// and crashes its actor (a non-std exception) on the first episode of task 3.
class chaos_env : public environment {
 public:
  explicit chaos_env(const environment_options& o) : inner_(make_environment("arithmetic", o)) {}
  observation reset(const task& t) override {
    const auto index = std::stoll(t.id.substr(t.id.rfind('/') + 1));
    if (index % 5 == 0) throw std::runtime_error("chaos: cannot judge " + t.id);
    if (index == 3 && !crashed_.exchange(true)) throw 42;
    return inner_->reset(t);
  }
  step_result step(const std::string& action) override { return inner_->step(action); }

 private:
  std::unique_ptr<environment> inner_;
  static inline std::atomic<bool> crashed_{false};
};
TROUPE_REGISTER_ENVIRONMENT("test_chaos", chaos_env, "arithmetic with failures and one crash");
// Its tasks are arithmetic's.
TROUPE_REGISTER_TASK_GENERATOR("test_chaos", [](const environment_options& o, std::uint64_t seed) {
  return make_task_source("arithmetic", o, seed);
});

TEST(grpo_faults, failing_and_crashing_episodes_are_recorded_and_every_step_completes) {
  testing::temp_dir dir;
  config_node tree = load_config_tree(std::string(TROUPE_SOURCE_DIR) + "/examples/grpo_arithmetic.yaml");
  for (const char* o : {"env.name=test_chaos", "sft.steps=2", "grpo.steps=3", "grpo.prompts_per_step=5",
                        "grpo.group_size=2", "grpo.eval_prompts=4", "grpo.eval_every=0", "grpo.rollouts_logged=1",
                        "system.progress=off"})
    apply_override(tree, o);
  apply_override(tree, "run.dir=" + (dir / "runs"));
  const auto cfg = read_config<experiment_config>(tree);
  auto run = create_run_dir(cfg.run, cfg.experiment, write_config(cfg));

  caf::actor_system_config sys_cfg;
  configure_actor_system(sys_cfg, cfg.system);
  caf::actor_system sys{sys_cfg};
  auto store = spawn_store_actor(sys, std::move(run.store));
  std::ostringstream out;
  experiment_context ctx{sys, cfg, run.path, store, out, std::nullopt};
  auto outcome = run_grpo(ctx);
  EXPECT_EQ(outcome.status, "finished") << outcome.message << out.str();
  caf::scoped_actor self{sys};
  self->send_exit(store, caf::exit_reason::user_shutdown);
  self->wait_for(store);

  auto s = run_store::open(run.path + "/store.sqlite", store_mode::read_only);
  const auto failed = s.metrics("train/failed_episodes");
  ASSERT_EQ(failed.size(), 3u) << "every step completes";
  double total = 0;
  for (const auto& m : failed) total += m.value;
  // GRPO draws train tasks 128..142 (2 SFT steps of 64 came first): 130, 135 and 140
  // throw, 2 samples each. The crash comes with eval task 3, at the evaluation of step 0.
  EXPECT_EQ(total, 6.0);
  bool restarted = false;
  for (const auto& e : s.events()) restarted |= e.kind == "restart";
  EXPECT_TRUE(restarted) << "the crashed worker was restarted with an event";
  bool error_logged = false;
  for (const auto& r : s.rollouts(1000)) error_logged |= r.rewards_json.find("chaos: cannot judge") != std::string::npos;
  EXPECT_TRUE(error_logged) << "failed episodes are stored with their error";
  EXPECT_EQ(s.metrics("train/loss").size(), 3u);
}

}  // namespace
}  // namespace troupe
