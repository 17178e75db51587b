// Experiments by name: what the `experiment:` key of a config selects. An experiment is
// a function that gets a started actor system, the resolved config, the run directory
// and its store actor, runs to the end (or to a stop request) and says how it ended.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "experiments/experiment_config.hpp"
#include "core/store.hpp"

namespace troupe {

struct experiment_context {
  caf::actor_system& sys;
  const experiment_config& config;
  std::string run_path;  // the run directory
  caf::actor store;      // the store actor (actors/store_actor.hpp)
  std::ostream& out;     // progress and summaries
  // `troupe run --resume`: the checkpoint to continue from; the store has already been
  // rewound to it (run_store::rewind_to_last_checkpoint). Empty for a new run, and for
  // a resumed one that died before its first checkpoint: that one starts over.
  std::optional<checkpoint_row> resume;
};

// How an experiment ended. `status` becomes runs.status in the store.
struct experiment_outcome {
  std::string status = "finished";  // finished | stopped | failed
  std::string message;              // one line for the terminal (and the event row if failed)
};

struct experiment_entry {
  std::string name;
  std::string summary;  // one line for `troupe run --help`
  std::function<experiment_outcome(experiment_context&)> run;
  // Checks settings that only the experiment knows (conflicts, supported combinations)
  // before any run directory exists; throws input_error. May be empty.
  std::function<void(const experiment_config&)> validate;
  // Whether `troupe run --resume` may continue it from a checkpoint (ctx.resume).
  bool resumable = false;
  // `troupe eval CONFIG --checkpoint DIR`: held-out evaluation of the weights at DIR,
  // whose metrics go to ctx's (new) run. Empty when the experiment has none.
  std::function<experiment_outcome(experiment_context&, const std::string& checkpoint)> evaluate;
};

// The common end of every experiment's run(): calls `body`; an input_error (bad input,
// exit code 2) propagates, any other exception becomes a "failed" outcome carrying its
// message; `stop` (shutting the experiment's actors down) runs on every path.
experiment_outcome run_guarded(const std::function<experiment_outcome()>& body, const std::function<void()>& stop);

// Whether a periodic event (an evaluation, a checkpoint) every `every` steps is due
// once `done` of `total` steps are done: never for every == 0, and not at the last step,
// whose evaluation and checkpoint the end of the run makes anyway.
constexpr bool due(std::int64_t every, std::int64_t done, std::int64_t total) {
  return every > 0 && done % every == 0 && done < total;
}

// Every experiment troupe knows, in the order `--help` lists them.
const std::vector<experiment_entry>& experiments();

// The entry named `name`, or nullptr.
const experiment_entry* find_experiment(const std::string& name);

}  // namespace troupe
