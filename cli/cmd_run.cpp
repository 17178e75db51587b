#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "experiments/experiment.hpp"
#include "actors/store_actor.hpp"
#include "cli/commands.hpp"
#include "core/config_tree.hpp"
#include "core/error.hpp"
#include "core/run_dir.hpp"
#include "core/stop.hpp"

namespace troupe::cli {

namespace {

void print_run_help() {
  std::cout << "usage: troupe run CONFIG [key=value ...] [--print-config]\n"
               "       troupe run --resume RUN_DIR\n\n"
               "Runs the experiment named by CONFIG's `experiment:` key in a new run directory\n"
               "under run.dir (default runs/), holding store.sqlite and the resolved config.yaml.\n\n"
               "  key=value        override any config key by its dotted path, e.g. run.seed=3\n"
               "  --print-config   print the resolved config (defaults, files, overrides) and exit\n"
               "  --resume RUN_DIR continue a stopped or killed run from its last checkpoint, with the\n"
               "                   config it was started with; what it recorded after that checkpoint\n"
               "                   is dropped and done again\n\n"
               "Experiments:\n";
  for (const auto& e : experiments()) std::cout << "  " << e.name << "  " << e.summary << '\n';
  std::cout << "\nCtrl-C stops the run at the next step, with a checkpoint; the run is recorded as stopped.\n";
}

struct run_request {
  std::string config_path;
  std::vector<std::string> overrides;
  bool print_config = false;
  std::string resume_dir;  // --resume
};

run_request parse_args(const args& a) {
  run_request r;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& arg = a[i];
    if (arg == "--print-config") r.print_config = true;
    else if (arg == "--resume") {
      if (i + 1 >= a.size()) throw input_error("run: --resume needs a run directory");
      r.resume_dir = a[++i];
    } else if (arg.rfind("--", 0) == 0) throw input_error("run: unknown option '" + arg + "' (see troupe run --help)");
    else if (r.config_path.empty() && arg.find('=') == std::string::npos) r.config_path = arg;
    else r.overrides.push_back(arg);
  }
  if (!r.resume_dir.empty()) {
    // A resumed run must be the run it continues: same config, so the same numbers.
    if (!r.config_path.empty() || !r.overrides.empty())
      throw input_error("run: --resume continues a run with the config it was started with (RUN_DIR/config.yaml); "
                        "give no CONFIG or key=value overrides");
    r.config_path = (std::filesystem::path(r.resume_dir) / config_file_name).string();
    return r;
  }
  if (r.config_path.empty()) throw input_error("run: missing CONFIG (usage: troupe run CONFIG [key=value ...])");
  return r;
}

int exit_code_for(const std::string& status) {
  if (status == "finished") return 0;
  if (status == "stopped") return 130;
  return 1;
}

}  // namespace

experiment_config resolve_config(const std::string& config_path, const std::vector<std::string>& overrides) {
  config_node tree = load_config_tree(config_path);
  for (const auto& o : overrides) apply_override(tree, o);
  auto cfg = read_config<experiment_config>(tree);
  cfg.source = config_path;
  std::vector<std::string> names;
  for (const auto& e : experiments()) names.push_back(e.name);
  const config_node* where = tree.find("experiment");
  if (cfg.experiment.empty())
    throw input_error((where ? where->where.to_string() : config_path) +
                      ": experiment: required key is missing or empty" + suggest("", names));
  const experiment_entry* entry = find_experiment(cfg.experiment);
  if (entry == nullptr)
    throw input_error(where->where.to_string() + ": experiment: unknown experiment '" + cfg.experiment + "'" +
                      suggest(cfg.experiment, names));
  if (entry->validate) entry->validate(cfg);
  return cfg;
}

int drive_experiment(new_run run, const experiment_config& cfg, std::optional<checkpoint_row> resume,
                     const std::function<experiment_outcome(experiment_context&)>& body, std::ostream& out,
                     const std::function<int(int)>& finish) {
  install_stop_handlers();
  caf::actor_system_config sys_cfg;
  configure_actor_system(sys_cfg, cfg.system);
  caf::actor_system sys{sys_cfg};
  caf::actor store = spawn_store_actor(sys, std::move(run.store));

  experiment_context ctx{sys, cfg, run.path, store, out, std::move(resume)};
  experiment_outcome outcome;
  try {
    outcome = body(ctx);
  } catch (const std::exception& e) {
    outcome = {"failed", e.what()};
  }

  caf::scoped_actor self{sys};
  if (outcome.status == "failed")
    self->request(store, caf::infinite, event_atom::value, event_row{wall_clock_now(), "error", "run", outcome.message})
      .receive([](bool) {}, [](caf::error&) {});
  self->request(store, caf::infinite, status_atom::value, outcome.status)
    .receive([](bool) {},
             [&](caf::error& err) { std::cerr << "troupe: could not record the run's end: " << render(err) << '\n'; });
  self->send_exit(store, caf::exit_reason::user_shutdown);
  self->wait_for(store);
  // The curves, for runs that have the usual metrics (a smoke run has none).
  try {
    out << plot_run_dir(run.path, {}, "") << '\n';
  } catch (const std::exception&) {
  }

  out << outcome.message << (outcome.message.empty() ? "" : "\n") << "run " << outcome.status << ": " << run.path
      << '\n';
  int code = exit_code_for(outcome.status);
  if (finish) code = finish(code);
  if (!cfg.cluster.workers.empty()) {
    // A head skips CAF's teardown, as `troupe worker` does: when workers disconnect while
    // the middleman stops, CAF 0.17 can keep a reference to a detached actor that talked
    // to them, and ~actor_system then waits for that actor forever (seen under load in
    // the cluster cli test). Everything the run writes is closed by now: the store actor
    // has finished, and the run lock goes with the process.
    out.flush();
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(code);
  }
  return code;
}

int cmd_run(const args& a) {
  if (wants_help(a)) {
    print_run_help();
    return 0;
  }
  const run_request req = parse_args(a);
  const experiment_config cfg = resolve_config(req.config_path, req.overrides);
  const std::string yaml = write_config(cfg);
  if (req.print_config) {
    std::cout << yaml;
    return 0;
  }

  const experiment_entry* entry = find_experiment(cfg.experiment);
  if (!req.resume_dir.empty() && !entry->resumable)
    throw input_error("--resume '" + req.resume_dir + "': the " + cfg.experiment + " experiment cannot resume");
  new_run run = req.resume_dir.empty() ? create_run_dir(cfg.run, cfg.experiment, yaml) : reopen_run_dir(req.resume_dir);
  std::optional<checkpoint_row> resume;
  if (req.resume_dir.empty()) {
    std::cout << "run directory: " << run.path << '\n';
  } else {
    if (run.store.info().status == "finished")
      throw input_error("--resume '" + req.resume_dir + "': the run has finished; there is nothing to continue");
    resume = run.store.rewind_to_last_checkpoint();
    const std::string from = resume ? "checkpoint " + resume->path : std::string("the start (no checkpoint yet)");
    run.store.log_event({wall_clock_now(), "resume", "run", "resumed from " + from});
    std::cout << "resuming " << run.path << " from " << from << '\n';
  }
  return drive_experiment(std::move(run), cfg, std::move(resume), entry->run, std::cout);
}

}  // namespace troupe::cli
