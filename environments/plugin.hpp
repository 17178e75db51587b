// Environments from shared modules: a user's environment built as a CMake MODULE that
// links troupe_environments (examples/custom_env/). Its TROUPE_REGISTER_ENVIRONMENT
// runs when the module is loaded and lands in the one registry of
// libtroupe_environments.so, so make_environment() finds it like a built-in.
#pragma once

#include <string>
#include <vector>

namespace troupe {

struct plugin_load_result {
  std::string path;                    // as given
  std::vector<std::string> environments;  // names this load registered (empty if loaded before)
};

// dlopens `path` (a relative path is taken from the working directory, not the library
// search path) and returns what it registered. Modules are never unloaded: the registry
// holds their factories. Throws input_error naming the path and dlerror()'s text when
// the module cannot be loaded, or when it registers a name that is already taken (the
// earlier registration is kept).
plugin_load_result load_environment_plugin(const std::string& path);

}  // namespace troupe
