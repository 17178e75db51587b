#include "guardrails/json_schema.hpp"

#include <algorithm>
#include <cmath>

#include "core/config_binding.hpp"
#include "core/error.hpp"

namespace troupe {

namespace {

using json = nlohmann::json;

const char* const type_names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};

std::string at(const std::string& pointer) { return pointer.empty() ? "/" : pointer; }

void check_schema(const json& s, const std::string& pointer, const std::string& source) {
  auto fail = [&](const std::string& what) { throw input_error(source + ": " + at(pointer) + ": " + what); };
  if (s.is_boolean()) return;  // true / false schemas
  if (!s.is_object()) fail("a schema must be an object");
  static const std::vector<std::string> known = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum",
    "minLength", "maxLength", "title", "description", "default", "examples", "$schema", "$id", "$comment"};
  for (const auto& [k, v] : s.items()) {
    if (std::find(known.begin(), known.end(), k) == known.end())
      fail("unsupported keyword '" + k + "'" + suggest(k, known) + "; troupe checks a subset (docs/guardrails.md)");
    const std::string sub = pointer + "/" + k;
    if (k == "type") {
      auto one = [&](const json& t) {
        if (!t.is_string() || std::none_of(std::begin(type_names), std::end(type_names),
                                           [&](const char* n) { return t.get<std::string>() == n; }))
          fail("unknown type " + t.dump());
      };
      if (v.is_array()) for (const auto& t : v) one(t);
      else one(v);
    } else if (k == "properties") {
      if (!v.is_object()) fail("properties must be an object");
      for (const auto& [name, ps] : v.items()) check_schema(ps, sub + "/" + name, source);
    } else if (k == "required") {
      if (!v.is_array() || std::any_of(v.begin(), v.end(), [](const json& x) { return !x.is_string(); }))
        fail("required must be a list of names");
    } else if (k == "additionalProperties" || k == "items") {
      check_schema(v, sub, source);
    } else if (k == "enum") {
      if (!v.is_array() || v.empty()) fail("enum must be a non-empty list");
    } else if (k == "minimum" || k == "maximum") {
      if (!v.is_number()) fail(k + " must be a number");
    } else if (k == "minLength" || k == "maxLength") {
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0))
        fail(k + " must be a non-negative integer");
    }
  }
}

bool has_type(const json& doc, const std::string& t) {
  if (t == "object") return doc.is_object();
  if (t == "array") return doc.is_array();
  if (t == "string") return doc.is_string();
  if (t == "number") return doc.is_number();
  if (t == "integer")
    return doc.is_number_integer() || (doc.is_number_float() && std::floor(doc.get<double>()) == doc.get<double>());
  if (t == "boolean") return doc.is_boolean();
  return doc.is_null();
}

std::size_t utf8_length(const std::string& s) {
  return static_cast<std::size_t>(
    std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

std::optional<std::string> check(const json& s, const json& doc, const std::string& pointer) {
  auto bad = [&](const std::string& what) { return std::optional<std::string>(at(pointer) + ": " + what); };
  if (s.is_boolean()) return s.get<bool>() ? std::nullopt : bad("no value is allowed here");
  if (auto t = s.find("type"); t != s.end()) {
    bool ok = false;
    if (t->is_array()) for (const auto& x : *t) ok = ok || has_type(doc, x.get<std::string>());
    else ok = has_type(doc, t->get<std::string>());
    if (!ok) return bad("expected " + (t->is_array() ? "one of " + t->dump() : "a value of type " + t->dump()) +
                        ", got " + doc.type_name());
  }
  if (auto e = s.find("enum"); e != s.end() && std::find(e->begin(), e->end(), doc) == e->end())
    return bad("not one of " + e->dump());
  if (doc.is_number()) {
    const double x = doc.get<double>();
    if (auto m = s.find("minimum"); m != s.end() && x < m->get<double>()) return bad("below minimum " + m->dump());
    if (auto m = s.find("maximum"); m != s.end() && x > m->get<double>()) return bad("above maximum " + m->dump());
  }
  if (doc.is_string()) {
    const auto n = utf8_length(doc.get<std::string>());
    if (auto m = s.find("minLength"); m != s.end() && n < m->get<std::size_t>())
      return bad("shorter than minLength " + m->dump());
    if (auto m = s.find("maxLength"); m != s.end() && n > m->get<std::size_t>())
      return bad("longer than maxLength " + m->dump());
  }
  if (doc.is_object()) {
    if (auto r = s.find("required"); r != s.end())
      for (const auto& name : *r)
        if (!doc.contains(name.get<std::string>())) return bad("missing required property " + name.dump());
    const auto props = s.find("properties");
    const auto extra = s.find("additionalProperties");
    for (const auto& [k, v] : doc.items()) {
      const std::string sub = pointer + "/" + k;
      if (props != s.end() && props->contains(k)) {
        if (auto err = check((*props)[k], v, sub)) return err;
      } else if (extra != s.end()) {
        if (extra->is_boolean() && !extra->get<bool>()) return bad("property '" + k + "' is not allowed");
        if (auto err = check(*extra, v, sub)) return err;
      }
    }
  }
  if (doc.is_array())
    if (auto items = s.find("items"); items != s.end())
      for (std::size_t i = 0; i < doc.size(); ++i)
        if (auto err = check(*items, doc[i], pointer + "/" + std::to_string(i))) return err;
  return std::nullopt;
}

}  // namespace

json_schema::json_schema(nlohmann::json schema, const std::string& source) : schema_(std::move(schema)) {
  check_schema(schema_, "", source);
}

std::optional<std::string> json_schema::violation(const nlohmann::json& doc) const { return check(schema_, doc, ""); }

}  // namespace troupe
