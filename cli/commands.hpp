// The subcommands of the `troupe` binary. Each takes the arguments after its name and
// returns the process exit code: 0 success, 1 failure, 2 bad input (usage, config,
// unknown names), 130 stopped by Ctrl-C.
#pragma once

#include <functional>
#include <ostream>
#include <optional>
#include <string>
#include <vector>

#include "experiments/experiment.hpp"
#include "core/run_dir.hpp"

namespace troupe::cli {

using args = std::vector<std::string>;

int cmd_run(const args& a);
int cmd_eval(const args& a);

// `troupe runs plot` (cli/cmd_runs.cpp): writes an SVG of the run's metrics to
// `out_file` (default DIR/plots.svg), one panel per entry of `panels` ("a" or "a,b");
// empty: the default panels the run has. Returns the line to print. Throws input_error
// for a metric the run lacks (named ones) or a run with none of the defaults.
std::string plot_run_dir(const std::string& dir, const std::vector<std::string>& panels, const std::string& out_file);

// Shared by run and eval (cli/cmd_run.cpp). Loads CONFIG, applies key=value overrides,
// binds and validates (the experiment's own checks too); throws input_error naming
// file:line and key.
experiment_config resolve_config(const std::string& config_path, const std::vector<std::string>& overrides);
// Starts the actor system and the store actor for `run`, calls `body`, records how it
// ended (status, and an error event if it failed), prints it to `out` (which is also
// the experiment's ctx.out); returns the exit code (0 finished, 130 stopped, 1 failed).
// `finish`, when given, runs once the run's store is closed and returns the exit code
// instead: a cluster head exits right after it, without returning (see cmd_run.cpp).
int drive_experiment(new_run run, const experiment_config& cfg, std::optional<checkpoint_row> resume,
                     const std::function<experiment_outcome(experiment_context&)>& body, std::ostream& out,
                     const std::function<int(int)>& finish = {});
int cmd_runs(const args& a);
int cmd_version(const args& a);
int cmd_envs(const args& a);
int cmd_rails(const args& a);
// `troupe worker` and `troupe cluster certs` (cli/cmd_worker.cpp), in the cluster
// library: main() reaches them through cluster_library().
int cmd_worker(const args& a);
int cmd_cluster(const args& a);
// Lives in the torch plugin (cli/cmd_generate.cpp); main() reaches it through
// torch_plugin().cmd_generate.
int cmd_generate(const args& a);
// Also in the torch plugin (cli/cmd_chat.cpp): torch_plugin().cmd_chat.
int cmd_chat(const args& a);

// True if `a` asks for help (-h or --help anywhere). Inline: the torch plugin uses it
// too, and the binary exports nothing to it.
inline bool wants_help(const args& a) {
  for (const auto& x : a)
    if (x == "-h" || x == "--help") return true;
  return false;
}

}  // namespace troupe::cli
