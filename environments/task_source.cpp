#include "environments/task_source.hpp"

#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/config_binding.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"
#include "environments/jsonl_tasks.hpp"
#include "environments/options.hpp"
#include "environments/registry_internal.hpp"

namespace troupe {

namespace {
// A function-local static, like the environment registry: registrations run from other
// files' static initializers, in any order.
std::map<std::string, task_generator_factory>& generators() {
  static std::map<std::string, task_generator_factory> g;
  return g;
}
}  // namespace

const char* split_name(split s) { return s == split::train ? "train" : "eval"; }

bool in_eval_split(std::uint64_t seed, std::string_view key, double eval_fraction) {
  // These constants fix which problems existing seeds hold out; changing them reshuffles
  // every split.
  const std::uint64_t h = splitmix64(seed ^ fnv1a(key) ^ 0x5eedULL);
  return static_cast<double>(h % 1000000) < eval_fraction * 1e6;
}

bool register_task_generator(const std::string& env_name, task_generator_factory factory) {
  if (!generators().emplace(env_name, std::move(factory)).second) {
    if (detail::report_registration_clash("task generator " + env_name)) return false;
    std::fprintf(stderr, "troupe: task generator '%s' is registered twice\n", env_name.c_str());
    std::abort();
  }
  return true;
}

bool has_task_generator(const std::string& env_name) { return generators().count(env_name) > 0; }

std::unique_ptr<task_source> make_task_source(const std::string& env_name, const environment_options& options,
                                              std::uint64_t seed) {
  const std::string file = option_string(options, "tasks_file", "");
  const std::string mode = option_string(options, "split", "auto");
  if (mode != "auto" && mode != "holdout")
    throw input_error("env.options.split: expected \"auto\" or \"holdout\", got '" + mode + "'");
  if (!file.empty()) {
    return std::make_unique<file_task_source>(file, load_jsonl_tasks(file),
                                              mode == "auto" ? split_mode::automatic : split_mode::holdout,
                                              option_eval_fraction(options), seed);
  }
  if (options.count("split"))
    throw input_error("env.options.split: only applies to a tasks_file; generated tasks are split by eval_fraction");
  auto it = generators().find(env_name);
  if (it == generators().end())
    throw input_error("environment '" + env_name + "': has no task generator; set env.options.tasks_file to a JSONL "
                      "file of tasks (docs/environments.md)");
  return it->second(options, seed);
}

}  // namespace troupe
