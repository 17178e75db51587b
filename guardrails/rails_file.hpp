// A rails file: the rails that check what goes into a model (`input:`) and what comes
// out of it (`output:`), each a list of rails run in file order of their verdicts.
//
//   input:
//     - name: no_pii
//       type: pii
//       on_trigger: {action: mask}
//   output:
//     - name: secrets
//       type: regex
//       patterns: ['AKIA[0-9A-Z]{16}']
//       on_trigger: {action: block, message: "I can't share that."}
//
// Every rail has `name` (unique in the file), `type` (its family) and `on_trigger`;
// the family's own keys sit beside them. docs/guardrails.md lists the families and
// their keys. The file is read with core's config tree, so `defaults:` composition
// works and every error names file:line, the key path and the rail.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config_tree.hpp"
#include "guardrails/configured_rail.hpp"
#include "guardrails/model_interfaces.hpp"

namespace troupe {

struct rails_load_options {
  // false: a rail whose model the services lack is an error; true: it is left out and
  // listed in rails_file::skipped (for tools that have no model, like `troupe rails eval`).
  bool skip_model_rails = false;
};

struct rails_file {
  std::string source;  // the path it was read from
  std::vector<std::unique_ptr<configured_rail>> input, output;
  std::vector<std::string> skipped;  // "input[3] 'jailbreak' (needs a logprob scorer)"

  const std::vector<std::unique_ptr<configured_rail>>& rails(rail_stage s) const {
    return s == rail_stage::input ? input : output;
  }
};

// Reads and builds the rails of `path`. Throws input_error naming file:line, key path
// and rail for a bad file: unknown keys or types, an invalid regex, a bad threshold, a
// duplicate name, an action the family cannot do (mask on a topics rail), a missing model.
rails_file load_rails_file(const std::string& path, const rail_services& services = {},
                           const rails_load_options& options = {});

// The same, from a parsed tree (tests, and files composed in memory).
rails_file build_rails_file(const config_node& root, const rail_services& services = {},
                            const rails_load_options& options = {});

// The rails a training run's `guardrails:` section turns on, as the output rails of a
// rails file, in check order: the length rail `max_length` (max_output_chars), then the
// output rails of g.rails_file. Throws input_error for a bad rails file, for one whose
// rails need a model that `services` lacks, and for a rail named max_length beside the
// length rail.
rails_file make_rails(const guardrails_section& g, const rail_services& services = {});

// Whether the rails of `g` (make_rails) ask a model. Builds them against a stand-in model
// that is never asked, so it checks the whole section: throws input_error as make_rails.
bool rails_need_model(const guardrails_section& g);

// The families' `type:` names, for docs and suggestions.
std::vector<std::string> rail_types();

}  // namespace troupe
