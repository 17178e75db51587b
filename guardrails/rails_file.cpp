#include "guardrails/rails_file.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/config_binding.hpp"
#include "core/error.hpp"

namespace troupe {

namespace {

struct family {
  const char* type;
  std::unique_ptr<configured_rail> (*make)(const rail_build&);
  bool spans;          // can mask / rewrite: it reports where it matched
  bool needs_scorer;
  bool needs_guard;
};

// The one table from `type:` to rail family.
const family families[] = {
  {"length", make_length_rail, true, false, false},
  {"regex", make_regex_rail, true, false, false},
  {"keywords", make_keywords_rail, true, false, false},
  {"topics", make_topics_rail, false, false, false},
  {"pii", make_pii_rail, true, false, false},
  {"json_schema", make_json_schema_rail, false, false, false},
  {"perplexity", make_perplexity_rail, false, true, false},
  {"self_check", make_self_check_rail, false, false, true},
};

bool valid_name(const std::string& n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '_' || c == '-' || c == '.';
  });
}

std::string scalar_at(const config_node& rail, const char* key, const std::string& path) {
  const config_node* n = rail.find(key);
  if (n == nullptr) detail::fail(rail, path, std::string("missing key '") + key + "'");
  std::string out;
  detail::read_scalar(*n, path + "." + key, out);
  return out;
}

std::unique_ptr<configured_rail> build_one(const config_node& raw, const std::string& path, rail_stage stage,
                                           const rail_services& services, const rails_load_options& options,
                                           std::set<std::string>& names, std::vector<std::string>& skipped) {
  if (raw.type != config_node::kind::mapping)
    detail::fail(raw, path, "expected a rail (a mapping with name and type), got " + detail::describe_node(raw));
  const std::string name = scalar_at(raw, "name", path);
  const std::string rail_suffix = " (rail '" + name + "')";
  try {
    if (!valid_name(name))
      detail::fail(*raw.find("name"), path + ".name", "'" + name + "' must be letters, digits, '_', '-' or '.'");
    if (!names.insert(name).second) detail::fail(*raw.find("name"), path + ".name", "duplicate rail name '" + name + "'");
    const std::string type = scalar_at(raw, "type", path);
    const family* f = nullptr;
    for (const auto& x : families)
      if (type == x.type) f = &x;
    if (f == nullptr) detail::fail(*raw.find("type"), path + ".type", "unknown rail type '" + type + "'" + suggest(type, rail_types()));

    // `on_trigger: block` is short for `on_trigger: {action: block}`.
    config_node node = raw;
    if (config_node* on = node.find("on_trigger"); on != nullptr && on->type == config_node::kind::scalar) {
      config_node action = *on;
      on->type = config_node::kind::mapping;
      on->scalar.clear();
      on->entries = {{"action", action}};
    }
    if (const config_node* on = node.find("on_trigger"); on != nullptr && on->type == config_node::kind::mapping) {
      if (const config_node* a = on->find("action"); a != nullptr && !f->spans &&
                                                   (a->scalar == "mask" || a->scalar == "rewrite"))
        detail::fail(*a, path + ".on_trigger.action",
                     "a " + type + " rail cannot " + a->scalar +
                       ": it does not say where in the text it matched (use block, penalize or log)");
    }
    const char* missing = (f->needs_scorer && !services.scorer) ? "a logprob scorer"
                          : (f->needs_guard && !services.guard) ? "a guard model" : nullptr;
    if (missing != nullptr) {
      if (options.skip_model_rails) {
        skipped.push_back(path + " '" + name + "' (needs " + missing + ")");
        return nullptr;
      }
      detail::fail(raw, path, std::string("a ") + type + " rail needs " + missing + ", and none was given");
    }
    return f->make({node, path, stage, services});
  } catch (const input_error& e) {
    throw input_error(e.what() + rail_suffix);
  }
}

void build_stage(const config_node& root, const char* key, rail_stage stage, const rail_services& services,
                 const rails_load_options& options, std::set<std::string>& names, rails_file& out) {
  const config_node* list = root.find(key);
  if (list == nullptr || list->type == config_node::kind::null) return;
  if (list->type != config_node::kind::sequence)
    detail::fail(*list, key, "expected a list of rails, got " + detail::describe_node(*list));
  auto& rails = stage == rail_stage::input ? out.input : out.output;
  for (std::size_t i = 0; i < list->items.size(); ++i) {
    auto r = build_one(list->items[i], std::string(key) + "[" + std::to_string(i) + "]", stage, services, options,
                       names, out.skipped);
    if (r) rails.push_back(std::move(r));
  }
}

}  // namespace

std::vector<std::string> rail_types() {
  std::vector<std::string> out;
  for (const auto& f : families) out.emplace_back(f.type);
  return out;
}

rails_file build_rails_file(const config_node& root, const rail_services& services, const rails_load_options& options) {
  rails_file out;
  out.source = root.where.file;
  if (root.type != config_node::kind::mapping)
    detail::fail(root, "", "a rails file is a mapping with input: and output: lists");
  for (const auto& [key, child] : root.entries)
    if (key != "input" && key != "output") detail::fail(child, key, "unknown key" + suggest(key, {"input", "output"}));
  std::set<std::string> names;
  build_stage(root, "input", rail_stage::input, services, options, names, out);
  build_stage(root, "output", rail_stage::output, services, options, names, out);
  return out;
}

rails_file load_rails_file(const std::string& path, const rail_services& services, const rails_load_options& options) {
  auto f = build_rails_file(load_config_tree(path), services, options);
  f.source = path;
  return f;
}

}  // namespace troupe
