// The env host's messages (actors/env_host.hpp): one episode to judge, and its verdict.
#pragma once

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

}  // namespace troupe
