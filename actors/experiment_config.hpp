// The top-level config of `troupe run`: one section per component, each with its
// defaults in its own struct (core/config_binding.hpp). A component that adds a section
// adds one field here; `--print-config` and the run's config.yaml list them all.
#pragma once

#include <string>

#include "actors/smoke.hpp"
#include "actors/system.hpp"
#include "core/config_binding.hpp"
#include "core/run_dir.hpp"

namespace troupe {

struct experiment_config {
  std::string experiment;  // which experiment runs: a name from experiments()
  run_section run;
  system_section system;
  smoke_section smoke;

  template <class V>
  void describe(V& v) {
    v.field("experiment", experiment, "what to run (see `troupe run --help` for the list)");
    v.field("run", run, "where the run is stored");
    v.field("system", system, "actor system and display");
    v.field("smoke", smoke, "the smoke experiment");
  }
};

}  // namespace troupe
