// `troupe envs list`: the registered environments, built in or from plugins. Needs no
// LibTorch and no actor system: environments are plain classes.
#include <algorithm>
#include <iostream>
#include <map>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/table.hpp"
#include "environments/environment.hpp"
#include "environments/plugin.hpp"
#include "environments/task_source.hpp"

namespace troupe::cli {

namespace {

constexpr const char* envs_usage = R"(usage: troupe envs list [--plugin PATH ...]

  list            the registered environments: name, where it comes from, whether it
                  has a task generator (else it needs env.options.tasks_file), summary
  --plugin PATH   load an environment module first (a shared library whose
                  TROUPE_REGISTER_ENVIRONMENT registers it; examples/custom_env/)
See docs/environments.md.
)";

}  // namespace

int cmd_envs(const args& a) {
  if (wants_help(a)) {
    std::cout << envs_usage;
    return 0;
  }
  std::string action;
  std::vector<std::string> plugins;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--plugin") {
      if (i + 1 >= a.size()) throw input_error("envs: --plugin needs a path");
      plugins.push_back(a[++i]);
    } else if (a[i].rfind("--", 0) == 0) {
      throw input_error("envs: unknown option '" + a[i] + "' (see troupe envs --help)");
    } else if (action.empty()) {
      action = a[i];
    } else {
      throw input_error("envs: unexpected argument '" + a[i] + "'");
    }
  }
  if (action != "list") {
    std::cerr << (action.empty() ? "troupe envs: which action?\n" : "troupe envs: unknown action '" + action + "'\n")
              << envs_usage;
    return 2;
  }
  std::map<std::string, std::string> origin;  // environment name -> plugin path
  for (const auto& p : plugins)
    for (const auto& name : load_environment_plugin(p).environments) origin[name] = p;

  text_table t;
  t.header = {"environment", "from", "tasks", "summary"};
  for (const auto& e : registered_environments()) {
    auto it = origin.find(e.name);
    t.rows.push_back({e.name, it == origin.end() ? "built-in" : it->second,
                      has_task_generator(e.name) ? "generated" : "tasks_file", e.summary});
  }
  t.print(std::cout);
  return 0;
}

}  // namespace troupe::cli
