// Between the registries and the plugin loader only (not for environments).
#pragma once

#include <string>
#include <vector>

namespace troupe::detail {

// While `sink` is set, registering a taken name (environment or task generator)
// appends the name to it instead of aborting: a plugin's clash becomes an error that
// load_environment_plugin reports. nullptr restores aborting.
void collect_registration_clashes(std::vector<std::string>* sink);
// The registries' check: true if the clash was collected, false if it should abort.
bool report_registration_clash(const std::string& name);

}  // namespace troupe::detail
