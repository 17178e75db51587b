// Reading an environment's options (the `env.options` map, values as text) the same way
// in every environment and task generator: one error format, one list of the keys that
// belong to the task source rather than to the environment.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "environments/environment.hpp"

namespace troupe {

// Keys every environment accepts and ignores, because the task source reads them
// (environments/task_source.hpp): tasks_file, split, eval_fraction.
bool is_task_source_option(const std::string& key);

// Throws input_error for a key of `o` that is neither in `known` nor a task-source
// option, naming the environment and suggesting the closest key.
void check_options(const environment_options& o, const std::string& env_name, std::initializer_list<const char*> known);

// The option `key` of `o` as a number in [lo, hi], or `fallback` when absent. A value
// that is not one, or out of range, is an input_error naming "env.options.<key>".
std::int64_t option_int(const environment_options& o, const std::string& key, std::int64_t fallback, std::int64_t lo,
                        std::int64_t hi);
double option_double(const environment_options& o, const std::string& key, double fallback, double lo, double hi);
// "true"/"false" (also 1/0, yes/no).
bool option_bool(const environment_options& o, const std::string& key, bool fallback);
std::string option_string(const environment_options& o, const std::string& key, const std::string& fallback);

// `eval_fraction`: the share of generated or untagged tasks held out for evaluation,
// in (0, 1). One default for every source.
double option_eval_fraction(const environment_options& o);

}  // namespace troupe
