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

#include "environments/environment.hpp"

namespace troupe {

struct episode_request {
  task t;
  std::string action;  // the policy's text
};

struct episode_result {
  std::string task_id;
  step_result verdict;
  bool failed = false;
  std::string error;   // why it failed
  double seconds = 0;  // time spent in reset + step
};

struct env_host_options {
  std::string env;                 // registered name (environments/environment.hpp)
  environment_options options;
  int pool = 4;                    // instances, i.e. episodes judged concurrently
  std::chrono::milliseconds episode_timeout{std::chrono::seconds(30)};
  std::chrono::milliseconds step_timeout{std::chrono::seconds(30)};  // multi-turn open / step
  caf::actor store;                // for restart / replace events; may be invalid
};

// Throws input_error for an unknown environment or bad options (it builds one instance
// up front to check them).
caf::actor spawn_env_host(caf::actor_system& sys, const env_host_options& opts);

}  // namespace troupe
