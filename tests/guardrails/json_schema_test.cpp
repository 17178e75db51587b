#include <gtest/gtest.h>

#include "core/error.hpp"
#include "guardrails/json_schema.hpp"

namespace troupe {
namespace {

using json = nlohmann::json;

const json tool_schema = json::parse(R"({
  "type": "object",
  "properties": {
    "city": {"type": "string", "minLength": 2, "maxLength": 5},
    "days": {"type": "integer", "minimum": 1, "maximum": 7},
    "unit": {"enum": ["C", "F"]},
    "tags": {"type": "array", "items": {"type": "string"}}
  },
  "required": ["city", "days"],
  "additionalProperties": false
})");

std::string violation(const char* doc) {
  json_schema s(tool_schema, "test");
  auto v = s.violation(json::parse(doc));
  return v ? *v : "";
}

TEST(json_schema, accepts_a_conforming_document) {
  EXPECT_EQ(violation(R"({"city": "Oslo", "days": 3, "unit": "C", "tags": ["a"]})"), "");
  // Four characters in seven bytes: lengths count characters. 3.0 is an integer.
  EXPECT_EQ(violation(R"({"city": "Łódź", "days": 3.0})"), "");
}

TEST(json_schema, names_the_first_violation_by_pointer) {
  EXPECT_EQ(violation(R"({"city": "Oslo"})"), "/: missing required property \"days\"");
  EXPECT_EQ(violation(R"({"city": "Oslo", "days": 9})"), "/days: above maximum 7");
  EXPECT_EQ(violation(R"({"city": "Oslo", "days": 0})"), "/days: below minimum 1");
  EXPECT_EQ(violation(R"({"city": "O", "days": 1})"), "/city: shorter than minLength 2");
  EXPECT_EQ(violation(R"({"city": "Oslo city", "days": 1})"), "/city: longer than maxLength 5");
  EXPECT_EQ(violation(R"({"city": "Oslo", "days": 1, "unit": "K"})"), "/unit: not one of [\"C\",\"F\"]");
  EXPECT_EQ(violation(R"({"city": "Oslo", "days": 1.5})"), "/days: expected a value of type \"integer\", got number");
  EXPECT_EQ(violation(R"({"city": "Oslo", "days": 1, "tags": ["a", 2]})"),
            "/tags/1: expected a value of type \"string\", got number");
  EXPECT_EQ(violation(R"({"city": "Oslo", "days": 1, "x": 1})"), "/: property 'x' is not allowed");
  EXPECT_EQ(violation(R"([1])"), "/: expected a value of type \"object\", got array");
}

TEST(json_schema, refuses_keywords_outside_the_subset) {
  try {
    json_schema(json::parse(R"({"properties": {"a": {"pattern": "x+"}}})"), "rails.yaml:3");
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("rails.yaml:3: /properties/a: unsupported keyword 'pattern'"),
              std::string::npos)
      << e.what();
  }
  EXPECT_THROW(json_schema(json::parse(R"({"type": "thing"})"), "s"), input_error);
  EXPECT_THROW(json_schema(json::parse(R"({"required": "a"})"), "s"), input_error);
  EXPECT_THROW(json_schema(json::parse(R"({"minLength": -1})"), "s"), input_error);
}

}  // namespace
}  // namespace troupe
