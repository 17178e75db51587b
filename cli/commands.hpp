// The subcommands of the `troupe` binary. Each takes the arguments after its name and
// returns the process exit code: 0 success, 1 failure, 2 bad input (usage, config,
// unknown names), 130 stopped by Ctrl-C.
#pragma once

#include <string>
#include <vector>

namespace troupe::cli {

using args = std::vector<std::string>;

int cmd_run(const args& a);
int cmd_runs(const args& a);
int cmd_version(const args& a);

// True if `a` asks for help (-h or --help anywhere).
bool wants_help(const args& a);

}  // namespace troupe::cli
