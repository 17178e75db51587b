// The env host's messages (actors/env_host.hpp): one episode to judge, and its verdict;
// and its protocol as a type.
#pragma once

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <cstdint>
#include <string>

#include "actors/protocol/atoms.hpp"
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

// Single-turn judging, a task's first observation, and multi-turn episodes by id
// (open, step, close). An env pool (actors/actor_pool.hpp) answers the same.
using env_host_actor = caf::typed_actor<
  caf::replies_to<judge_atom, episode_request>::with<episode_result>,
  caf::replies_to<reset_atom, task>::with<observation>,
  caf::replies_to<open_atom, std::int64_t, task>::with<observation>,
  caf::replies_to<step_atom, std::int64_t, std::string>::with<step_result>,
  caf::replies_to<close_atom, std::int64_t>::with<bool>>;

}  // namespace troupe
