// The `json_schema` rail: the text (a tool call's output or arguments) must be JSON that
// conforms to a schema (the subset in json_schema.hpp). A ```json fence around it is
// accepted, as models often write one.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "guardrails/configured_rail.hpp"
#include "guardrails/json_schema.hpp"

namespace troupe {

namespace {

struct json_schema_config {
  rail_common common;
  std::string schema;       // JSON text
  std::string schema_file;  // or a path, relative to the rails file

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("schema", schema, "the JSON Schema, as JSON text (a YAML block scalar '|')");
    v.field("schema_file", schema_file, "or a JSON file holding it, relative to the rails file");
  }
};

std::string unfenced(const std::string& text) {
  auto b = text.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return text;
  auto e = text.find_last_not_of(" \t\r\n") + 1;
  std::string s = text.substr(b, e - b);
  if (s.rfind("```", 0) != 0 || s.size() < 6 || s.compare(s.size() - 3, 3, "```") != 0) return s;
  auto nl = s.find('\n');
  if (nl == std::string::npos) return s;
  return s.substr(nl + 1, s.size() - 3 - (nl + 1));
}

class json_schema_rail : public configured_rail {
 public:
  json_schema_rail(const rail_build& b, const json_schema_config& c)
      : configured_rail(c.common, b.stage), schema_(load(b, c)) {}

 protected:
  detection detect(const std::string& text, const stop_flag&) const override {
    detection d;
    auto doc = nlohmann::json::parse(unfenced(text), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) {
      d.triggered = true;
      d.reason = "not JSON";
    } else if (auto v = schema_.violation(doc)) {
      d.triggered = true;
      d.reason = "schema: " + *v;
    }
    return d;
  }

 private:
  static json_schema load(const rail_build& b, const json_schema_config& c) {
    if (c.schema.empty() == c.schema_file.empty())
      rail_config_error(b.node, b.path, "needs exactly one of schema and schema_file");
    std::string text = c.schema, source;
    const config_node& at = node_or_self(b, c.schema.empty() ? "schema_file" : "schema");
    if (!c.schema_file.empty()) {
      auto p = std::filesystem::path(b.node.where.file).parent_path() / c.schema_file;
      std::ifstream in(p);
      if (!in) rail_config_error(at, b.path + ".schema_file", "cannot read '" + p.string() + "'");
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
      source = p.string();
    } else {
      source = at.where.to_string() + ": " + b.path + ".schema";
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) rail_config_error(at, b.path + (c.schema.empty() ? ".schema_file" : ".schema"), "is not valid JSON");
    return json_schema(std::move(j), source);
  }

  json_schema schema_;
};

}  // namespace

std::unique_ptr<configured_rail> make_json_schema_rail(const rail_build& b) {
  return std::make_unique<json_schema_rail>(b, bind_rail_config<json_schema_config>(b));
}

}  // namespace troupe
