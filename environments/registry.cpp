#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/config_binding.hpp"
#include "core/error.hpp"
#include "environments/environment.hpp"
#include "environments/registry_internal.hpp"

namespace troupe {

namespace {
struct entry {
  std::string summary;
  environment_factory factory;
};
// A function-local static: registrations run from other files' static initializers,
// in any order.
std::map<std::string, entry>& registry() {
  static std::map<std::string, entry> r;
  return r;
}
std::vector<std::string>* clash_sink = nullptr;
}  // namespace

namespace detail {
void collect_registration_clashes(std::vector<std::string>* sink) { clash_sink = sink; }
bool report_registration_clash(const std::string& name) {
  if (!clash_sink) return false;
  clash_sink->push_back(name);
  return true;
}
}  // namespace detail

bool register_environment(const std::string& name, const std::string& summary, environment_factory factory) {
  if (!registry().emplace(name, entry{summary, std::move(factory)}).second) {
    if (detail::report_registration_clash(name)) return false;
    std::fprintf(stderr, "troupe: environment '%s' is registered twice\n", name.c_str());
    std::abort();
  }
  return true;
}

std::unique_ptr<environment> make_environment(const std::string& name, const environment_options& options) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::vector<std::string> names;
    for (const auto& [n, e] : registry()) names.push_back(n);
    throw input_error("environment '" + name + "': not registered" + suggest(name, names));
  }
  return it->second.factory(options);
}

std::vector<environment_info> registered_environments() {
  std::vector<environment_info> out;
  for (const auto& [n, e] : registry()) out.push_back({n, e.summary});
  return out;
}

}  // namespace troupe
