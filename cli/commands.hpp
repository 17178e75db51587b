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
int cmd_rails(const args& a);
// Lives in the torch plugin (cli/cmd_generate.cpp); main() reaches it through
// torch_plugin().cmd_generate.
int cmd_generate(const args& a);

// True if `a` asks for help (-h or --help anywhere). Inline: the torch plugin uses it
// too, and the binary exports nothing to it.
inline bool wants_help(const args& a) {
  for (const auto& x : a)
    if (x == "-h" || x == "--help") return true;
  return false;
}

}  // namespace troupe::cli
