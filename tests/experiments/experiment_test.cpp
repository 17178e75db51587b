// The experiment driver's shared ending (run_guarded) and the periodic-event rule, on
// their own: no actor system, no torch.
#include <gtest/gtest.h>

#include <stdexcept>

#include "core/error.hpp"
#include "experiments/experiment.hpp"

namespace troupe {
namespace {

TEST(run_guarded, a_finished_body_is_its_outcome_and_stop_runs_once) {
  int stops = 0;
  auto out = run_guarded([] { return experiment_outcome{"stopped", "ctrl-c"}; }, [&] { ++stops; });
  EXPECT_EQ(out.status, "stopped");
  EXPECT_EQ(out.message, "ctrl-c");
  EXPECT_EQ(stops, 1);
}

TEST(run_guarded, another_exception_fails_the_run_with_its_message_and_input_errors_propagate) {
  int stops = 0;
  auto out = run_guarded([]() -> experiment_outcome { throw std::runtime_error("the env host died"); },
                         [&] { ++stops; });
  EXPECT_EQ(out.status, "failed");
  EXPECT_EQ(out.message, "the env host died");
  EXPECT_THROW(run_guarded([]() -> experiment_outcome { throw input_error("env.name: unknown"); }, [&] { ++stops; }),
               input_error);
  EXPECT_EQ(stops, 2) << "the actors stop on every path";
}

TEST(due, is_every_n_steps_never_for_zero_and_not_at_the_last_step) {
  EXPECT_TRUE(due(10, 10, 30));
  EXPECT_FALSE(due(10, 30, 30));
  EXPECT_FALSE(due(10, 15, 30));
  EXPECT_FALSE(due(0, 10, 30));
}

}  // namespace
}  // namespace troupe
