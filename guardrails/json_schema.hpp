// A subset of JSON Schema, enough to check a tool call's arguments or a structured
// answer: type (one or a list of object, array, string, number, integer, boolean,
// null), properties, required, additionalProperties (true, false or a schema), items
// (one schema for every element), enum, minimum, maximum (inclusive), minLength,
// maxLength (in Unicode characters). title, description, default, examples, $schema,
// $id and $comment are accepted and ignored. Any other keyword ($ref, pattern, oneOf...)
// is refused when the schema is parsed, so a schema never silently checks less than it
// says.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace troupe {

class json_schema {
 public:
  // Throws input_error "<source>: <pointer>: what" for a malformed schema or a keyword
  // outside the subset.
  json_schema(nlohmann::json schema, const std::string& source);

  // nullopt when `doc` conforms; else the first violation, "/args/0: expected an integer".
  std::optional<std::string> violation(const nlohmann::json& doc) const;

 private:
  nlohmann::json schema_;
};

}  // namespace troupe
