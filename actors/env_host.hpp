// The env host actor: owns a pool of instances of one environment and judges episodes
// on them, one episode per instance at a time. Requests beyond the pool wait in the
// mailbox. It is a thin shell over environments/environment.hpp.
//
// Protocol:
//   (judge_atom, episode_request) -> episode_result
//       Single-turn: reset(task), then step(action). An environment that throws, or
//       takes longer than the per-episode timeout, gives a result with failed = true
//       and the error text; the host itself goes on. Each instance runs in a worker
//       under a supervisor (actors/supervisor.hpp): a worker that crashes is restarted
//       with a fresh instance and a `restart` event; one stuck past the timeout is
//       replaced (a `replace` event). Past the supervisor's restart limit the host
//       exits with errc::restart_limit.
//   (reset_atom, task)            -> observation     the first observation of a task
//                                                    (for prompts), without an episode
//   Multi-turn episodes, each on an instance of its own, on the worker that opened it:
//   (open_atom, int64 id, task)   -> observation     starts episode `id` (the caller's
//                                                    unique number); errc::bad_input if
//                                                    reset throws
//   (step_atom, int64 id, action) -> step_result     one turn; the episode ends when
//                                                    done (or on an error, or a timeout)
//   (close_atom, int64 id)        -> bool            ends an episode early (max turns)
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <string>

#include "actors/protocol/env_host.hpp"
#include "core/config_binding.hpp"
#include "environments/environment.hpp"

namespace troupe {

struct env_host_options {
  std::string env;                 // registered name (environments/environment.hpp)
  environment_options options;
  int pool = 4;                    // instances, i.e. episodes judged concurrently
  std::chrono::milliseconds episode_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds step_timeout{std::chrono::seconds(30)};  // multi-turn open / step
  caf::actor store;                // for restart / replace events; may be invalid
};

// `env:` which environment judges the episodes.
struct env_section {
  std::string name = "arithmetic";
  std::map<std::string, std::string> options;  // the environment's own options
  std::int64_t pool = 4;                       // instances judging concurrently
  double episode_timeout_s = 30;
  double step_timeout_s = 30;                  // multi-turn: one reset or step
  std::int64_t max_turns = 1;                  // 1: single-turn; more: multi-turn episodes
  std::string success = "correct";             // the reward component that means solved (pass@k, accuracy)

  template <class V>
  void describe(V& v) {
    v.field("name", name, "a registered environment");
    v.field("max_turns", max_turns,
            "policy turns per episode: 1 judges one answer; more plays multi-turn episodes (games, tools)",
            in_range<std::int64_t>(1, 1000));
    v.field("success", success, "reward component whose value > 0 means the episode succeeded (accuracy, pass@k)");
    v.field("options", options, "the environment's options, e.g. {max_digits: \"2\"}");
    v.field("pool", pool, "environment instances judging episodes concurrently", in_range<std::int64_t>(1, 4096));
    v.field("episode_timeout_s", episode_timeout_s, "an episode running longer fails", greater_than(0.0));
    v.field("step_timeout_s", step_timeout_s, "multi-turn: one reset or step of the environment running longer fails",
            greater_than(0.0));
  }
};

// The host's options for `env` (timeouts in milliseconds), recording events in `store`.
env_host_options env_host_options_for(const env_section& env, const caf::actor& store);

// Throws input_error for an unknown environment or bad options (it builds one instance
// up front to check them).
env_host_actor spawn_env_host(caf::actor_system& sys, const env_host_options& opts);

}  // namespace troupe
