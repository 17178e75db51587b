#include "core/config_tree.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace troupe {

namespace fs = std::filesystem;

std::string source_location::to_string() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line);
}

const config_node* config_node::find(std::string_view key) const {
  for (const auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

config_node* config_node::find(std::string_view key) {
  for (auto& [k, v] : entries)
    if (k == key) return &v;
  return nullptr;
}

const config_node* config_node::at_path(std::string_view dotted) const {
  const config_node* node = this;
  while (node != nullptr && !dotted.empty()) {
    if (node->type != kind::mapping) return nullptr;
    auto dot = dotted.find('.');
    node = node->find(dotted.substr(0, dot));
    dotted = dot == std::string_view::npos ? std::string_view{} : dotted.substr(dot + 1);
  }
  return node;
}

namespace {

config_node from_yaml(const YAML::Node& y, const std::string& file) {
  config_node out;
  out.where = {file, y.Mark().line + 1};
  switch (y.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out.type = config_node::kind::null;
      break;
    case YAML::NodeType::Scalar:
      out.type = config_node::kind::scalar;
      out.scalar = y.Scalar();
      break;
    case YAML::NodeType::Sequence:
      out.type = config_node::kind::sequence;
      for (const auto& item : y) out.items.push_back(from_yaml(item, file));
      break;
    case YAML::NodeType::Map:
      out.type = config_node::kind::mapping;
      for (const auto& kv : y) {
        auto key = kv.first.as<std::string>();
        if (out.find(key) != nullptr)
          throw input_error(source_location{file, kv.first.Mark().line + 1}.to_string() +
                            ": duplicate key '" + key + "'");
        config_node child = from_yaml(kv.second, file);
        // An empty value (`key:`) has no position of its own (yaml-cpp reports the
        // next token's); use the key's.
        if (kv.second.Mark().is_null() || kv.second.IsNull()) child.where.line = kv.first.Mark().line + 1;
        out.entries.emplace_back(key, std::move(child));
      }
      break;
  }
  return out;
}

config_node parse_yaml(const std::string& text, const std::string& source_name) {
  try {
    return from_yaml(YAML::Load(text), source_name);
  } catch (const YAML::Exception& e) {
    // e.msg is the bare message; e.mark is 0-based.
    throw input_error(source_name + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw input_error("config file '" + path + "': is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error("config file '" + path + "': cannot read (" + errno_text(errno) + ")");
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

config_node load_with_defaults(const std::string& path, std::vector<std::string>& chain) {
  auto canonical = fs::weakly_canonical(path).string();
  for (const auto& seen : chain)
    if (seen == canonical)
      throw input_error("config file '" + path + "': defaults form a cycle through this file");
  chain.push_back(canonical);

  config_node file_node = parse_yaml(read_file(path), path);
  if (file_node.type == config_node::kind::null) {
    file_node.type = config_node::kind::mapping;  // an empty file is an empty mapping
  } else if (file_node.type != config_node::kind::mapping) {
    throw input_error(file_node.where.to_string() + ": the top level must be a mapping of keys");
  }

  config_node merged;
  merged.type = config_node::kind::mapping;
  merged.where = {path, 1};
  if (const config_node* defaults = file_node.find("defaults")) {
    std::vector<const config_node*> names;
    if (defaults->type == config_node::kind::scalar) {
      names.push_back(defaults);
    } else if (defaults->type == config_node::kind::sequence) {
      for (const auto& item : defaults->items) names.push_back(&item);
    } else {
      throw input_error(defaults->where.to_string() +
                        ": defaults: expected a file name or a list of file names");
    }
    auto dir = fs::path(path).parent_path();
    for (const config_node* name : names) {
      if (name->type != config_node::kind::scalar)
        throw input_error(name->where.to_string() + ": defaults: expected a file name");
      auto included = (dir / name->scalar).string();
      std::error_code ec;
      if (!fs::exists(included, ec))
        throw input_error(name->where.to_string() + ": defaults: file '" + included +
                          "' does not exist");
      merge_into(merged, load_with_defaults(included, chain));
    }
    auto& entries = file_node.entries;
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [](const auto& kv) { return kv.first == "defaults"; }),
                  entries.end());
  }
  merge_into(merged, std::move(file_node));
  chain.pop_back();
  return merged;
}

}  // namespace

config_node parse_config_text(const std::string& text, const std::string& source_name) {
  return parse_yaml(text, source_name);
}

config_node load_config_tree(const std::string& path) {
  std::vector<std::string> chain;
  return load_with_defaults(path, chain);
}

void merge_into(config_node& base, config_node top) {
  if (base.type != config_node::kind::mapping || top.type != config_node::kind::mapping) {
    base = std::move(top);
    return;
  }
  for (auto& [key, value] : top.entries) {
    if (config_node* existing = base.find(key)) {
      merge_into(*existing, std::move(value));
    } else {
      base.entries.emplace_back(key, std::move(value));
    }
  }
}

void apply_override(config_node& root, std::string_view assignment) {
  const std::string arg(assignment);
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw input_error("command line: '" + arg + "': expected key=value (for example trainer.lr=1e-5)");
  std::string_view dotted = assignment.substr(0, eq);
  const std::string source = "command line (" + arg + ")";

  config_node value = parse_yaml(std::string(assignment.substr(eq + 1)), source);
  // parse_yaml stamps line 1; an override has no line.
  std::vector<config_node*> stack{&value};
  while (!stack.empty()) {
    config_node* n = stack.back();
    stack.pop_back();
    n->where = {source, 0};
    for (auto& item : n->items) stack.push_back(&item);
    for (auto& kv : n->entries) stack.push_back(&kv.second);
  }

  config_node* node = &root;
  while (true) {
    auto dot = dotted.find('.');
    std::string key(dotted.substr(0, dot));
    if (key.empty())
      throw input_error("command line: '" + arg + "': empty key segment in '" +
                        std::string(assignment.substr(0, eq)) + "'");
    if (node->type != config_node::kind::mapping) {
      // Overriding below a scalar: the binder reports the type error with this source.
      node->type = config_node::kind::mapping;
      node->items.clear();
      node->scalar.clear();
    }
    config_node* child = node->find(key);
    if (child == nullptr) {
      config_node fresh;
      fresh.type = config_node::kind::mapping;
      fresh.where = {source, 0};
      node->entries.emplace_back(key, std::move(fresh));
      child = &node->entries.back().second;
    }
    if (dot == std::string_view::npos) {
      merge_into(*child, std::move(value));
      return;
    }
    dotted = dotted.substr(dot + 1);
    node = child;
  }
}

}  // namespace troupe
