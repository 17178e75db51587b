// The configuration as parsed, before it is bound to typed structs: a tree of YAML
// mappings, sequences and scalars in which every node remembers where it came from
// (file and line, or the command-line argument), so that any later error can name it.
//
// Loading composes files: a file may start with `defaults: [a.yaml, b.yaml]` (paths
// relative to that file). The defaults are merged first, in order, then the file itself;
// mappings merge key by key, anything else is replaced. Dotted overrides from the
// command line (`trainer.lr=1e-5`) are applied last.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe {

// Where a config value was written. line is 1-based; 0 means "no line" (command line).
struct source_location {
  std::string file;  // a path, or "command line"
  int line = 0;

  // "examples/smoke.yaml:12", or "command line (trainer.lr=1e-5)".
  std::string to_string() const;
};

struct config_node {
  enum class kind { null, scalar, sequence, mapping };

  kind type = kind::null;
  std::string scalar;                                     // kind::scalar
  std::vector<config_node> items;                         // kind::sequence
  std::vector<std::pair<std::string, config_node>> entries;  // kind::mapping, file order
  source_location where;

  // The child under `key`, or nullptr. REQUIRES: type == kind::mapping.
  const config_node* find(std::string_view key) const;
  config_node* find(std::string_view key);

  // The node at a dotted path ("trainer.lr"), or nullptr.
  const config_node* at_path(std::string_view dotted) const;
};

// Reads `path` and its `defaults:` chain. Throws input_error naming the file (and the
// line for YAML syntax errors) when a file is missing, unreadable, malformed, or when
// the defaults form a cycle.
config_node load_config_tree(const std::string& path);

// Parses one YAML document from memory; `source_name` is used in error messages.
config_node parse_config_text(const std::string& text, const std::string& source_name);

// Applies `key.path=value` to `root`. The value is parsed as YAML (so `[1, 2]` is a list
// and `'007'` a string). Throws input_error when the argument has no '=' or an empty key.
void apply_override(config_node& root, std::string_view assignment);

// Merges `top` into `base`: mappings key by key, everything else replaced.
void merge_into(config_node& base, config_node top);

}  // namespace troupe
