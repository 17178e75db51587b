#include "environments/plugin.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <mutex>

#include "core/error.hpp"
#include "environments/environment.hpp"
#include "environments/registry_internal.hpp"

namespace troupe {

plugin_load_result load_environment_plugin(const std::string& path) {
  // Static initializers of the module run inside dlopen and must not throw through it,
  // so name clashes are collected by the registry and reported here.
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::vector<std::string> before;
  for (const auto& e : registered_environments()) before.push_back(e.name);

  std::vector<std::string> clashes;
  detail::collect_registration_clashes(&clashes);
  // Without a slash, dlopen would search the system's library path instead of the
  // working directory.
  const std::string where = path.find('/') == std::string::npos ? "./" + path : path;
  void* handle = dlopen(where.c_str(), RTLD_NOW | RTLD_LOCAL);
  detail::collect_registration_clashes(nullptr);
  if (!handle) {
    const char* why = dlerror();
    throw input_error("environment plugin " + path + ": cannot load: " + (why ? why : "unknown error"));
  }
  if (!clashes.empty()) {
    std::string names;
    for (const auto& c : clashes) names += (names.empty() ? "'" : ", '") + c + "'";
    throw input_error("environment plugin " + path + ": registers " + names +
                      ", already registered (built in or by another plugin); rename it in the module");
  }
  plugin_load_result r;
  r.path = path;
  for (const auto& e : registered_environments())
    if (std::find(before.begin(), before.end(), e.name) == before.end()) r.environments.push_back(e.name);
  return r;
}

}  // namespace troupe
