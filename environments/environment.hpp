// Environments: what a policy acts in. An environment receives a task, shows the
// policy a first observation, and judges each action the policy writes: single-turn
// tasks (a question and one answer) finish after one step; multi-turn ones (a game, a
// tool session) answer with a new observation until they say `done`.
//
// Writing one: derive from `environment`, implement reset() and step(), and register a
// factory under a name in one line:
//
//   class echo_env : public troupe::environment { ... };
//   TROUPE_REGISTER_ENVIRONMENT("echo", echo_env, "repeats the prompt; reward 1 for an exact echo");
//
// (examples/custom_env/ is a complete one, loaded as a plugin; docs/environments.md is
// the guide.) The config then names it (`env.name: echo`) and the env host actor (actors/) keeps a
// pool of instances, one per episode in flight; the coordinator drives episodes. An
// instance serves one episode at a time, from reset() to done, so it may keep the
// episode's state in members. It need not be thread-safe.
//
// Errors: an environment that cannot judge an action (a bug, an unreachable tool)
// throws; the env host records that episode as failed with the error and the run goes
// on. Throw troupe::input_error for a malformed task.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

// One problem to solve. Datasets and generators produce these.
struct task {
  std::string id;                               // stable within its dataset, e.g. "arithmetic/train/42"
  std::string prompt;                           // the first observation, before chat formatting
  std::map<std::string, std::string> metadata;  // what the environment needs to judge, e.g. {"answer": "46"}
};

// What the policy sees next, and where its generation should stop.
struct observation {
  std::string text;
  std::vector<std::string> stop_strings;  // generation stops once the action contains one
};

// The verdict on one action.
struct step_result {
  observation next;                            // the next observation; ignored when done
  std::map<std::string, double> rewards;       // named components, e.g. {"correct": 1, "format": 1}
  bool done = true;
  std::map<std::string, std::string> info;     // for logs and rollouts, e.g. {"parsed": "46"}
};

class environment {
 public:
  virtual ~environment() = default;

  // Starts an episode for `t` and returns the first observation.
  virtual observation reset(const task& t) = 0;

  // Judges `action` (the policy's text, up to and including a stop string if it hit
  // one). REQUIRES: reset() was called and the episode is not done.
  virtual step_result step(const std::string& action) = 0;
};

// Options every environment factory receives (the `env:` config section's free-form
// `options` map, values as text).
using environment_options = std::map<std::string, std::string>;
using environment_factory = std::function<std::unique_ptr<environment>(const environment_options&)>;

// Registers `factory` under `name`; returns true. Registering a name twice aborts at
// start-up (two environments claiming one name is a build mistake); inside a plugin
// being loaded (environments/plugin.hpp) it is reported as an input_error instead.
bool register_environment(const std::string& name, const std::string& summary, environment_factory factory);

// A new instance of the environment registered as `name`. Throws input_error for an
// unknown name, suggesting the closest registered one.
std::unique_ptr<environment> make_environment(const std::string& name, const environment_options& options = {});

struct environment_info {
  std::string name;
  std::string summary;
};
std::vector<environment_info> registered_environments();  // sorted by name

}  // namespace troupe

#define TROUPE_ENV_CONCAT_(a, b) a##b
#define TROUPE_ENV_CONCAT(a, b) TROUPE_ENV_CONCAT_(a, b)
// Registers class `cls` (constructible from `const environment_options&`) as `name`.
#define TROUPE_REGISTER_ENVIRONMENT(name, cls, summary)                                         \
  static const bool TROUPE_ENV_CONCAT(troupe_env_registered_, __LINE__) =                      \
    ::troupe::register_environment(name, summary, [](const ::troupe::environment_options& o) { \
      return std::unique_ptr<::troupe::environment>(new cls(o));                              \
    })
