#include <gtest/gtest.h>

#include "core/config_tree.hpp"
#include "core/error.hpp"
#include "guardrails/rails_file.hpp"
#include "tests/guardrails/fakes.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

rails_file parse(const std::string& yaml, const rail_services& s = {}, const rails_load_options& o = {}) {
  return build_rails_file(parse_config_text(yaml, "rails.yaml"), s, o);
}

// The input_error text of parsing `yaml`, or "" when it parses.
std::string error_of(const std::string& yaml, const rail_services& s = {}) {
  try {
    parse(yaml, s);
  } catch (const input_error& e) {
    return e.what();
  }
  return "";
}

rail_services with_models() {
  return {std::make_shared<testing::constant_scorer>(-1.0), std::make_shared<testing::fixed_guard>("no")};
}

TEST(rails_file, builds_input_and_output_rails_in_file_order) {
  auto f = parse(R"(
input:
  - {name: pii, type: pii, on_trigger: mask}
  - name: words
    type: keywords
    keywords: [foo, bar baz]
    on_trigger: {action: penalize, weight: 0.25}
output:
  - {name: long, type: length, max_chars: 10}
)");
  ASSERT_EQ(f.input.size(), 2u);
  ASSERT_EQ(f.output.size(), 1u);
  EXPECT_EQ(f.input[0]->name(), "pii");
  EXPECT_EQ(f.input[0]->on_trigger().action, "mask") << "a bare word is the action";
  EXPECT_EQ(f.input[1]->type(), "keywords");
  EXPECT_DOUBLE_EQ(f.input[1]->on_trigger().weight, 0.25);
  EXPECT_EQ(f.output[0]->on_trigger().action, "block") << "the default action";
  EXPECT_EQ(f.output[0]->stage(), rail_stage::output);
}

TEST(rails_file, a_rail_checks_only_its_own_stage) {
  auto f = parse("output:\n  - {name: long, type: length, max_chars: 3}\n");
  EXPECT_EQ(f.output[0]->check(rail_stage::output, "12345").action, rail_action::block);
  EXPECT_EQ(f.output[0]->check(rail_stage::input, "12345").action, rail_action::allow);
}

TEST(rails_file, an_invalid_regex_names_file_line_pattern_and_rail) {
  auto e = error_of(R"(input:
  - name: secrets
    type: regex
    patterns:
      - 'ok+'
      - '(unclosed'
)");
  EXPECT_NE(e.find("rails.yaml:6: input[0].patterns[1]: invalid regex '(unclosed'"), std::string::npos) << e;
  EXPECT_NE(e.find("(rail 'secrets')"), std::string::npos) << e;
}

TEST(rails_file, an_unknown_type_is_named_with_a_suggestion) {
  auto e = error_of("input:\n  - name: r\n    type: regexp\n    patterns: [a]\n");
  EXPECT_NE(e.find("rails.yaml:3: input[0].type: unknown rail type 'regexp' (did you mean 'regex'?)"),
            std::string::npos) << e;
  EXPECT_NE(e.find("(rail 'r')"), std::string::npos) << e;
}

TEST(rails_file, a_bad_threshold_names_the_key_and_rail) {
  auto e = error_of(R"(input:
  - name: jb
    type: perplexity
    length_per_perplexity_threshold: -3
)", with_models());
  EXPECT_NE(e.find("rails.yaml:4: input[0].length_per_perplexity_threshold: must be > 0.0, got -3.0"), std::string::npos)
    << e;
  EXPECT_NE(e.find("(rail 'jb')"), std::string::npos) << e;
  e = error_of("input:\n  - {name: g, type: self_check, prompt: 'x {text}', timeout_ms: 0}\n", with_models());
  EXPECT_NE(e.find("input[0].timeout_ms: must be >= 1"), std::string::npos) << e;
  e = error_of("input:\n  - {name: g, type: self_check, prompt: 'x {text}', on_failure: closed}\n", with_models());
  EXPECT_NE(e.find("input[0].on_failure: must be one of"), std::string::npos) << e;
  e = error_of("input:\n  - {name: w, type: keywords, keywords: [a], on_trigger: {action: penalize, weight: 0}}\n");
  EXPECT_NE(e.find("input[0].on_trigger.weight: must be > 0"), std::string::npos) << e;
}

TEST(rails_file, other_mistakes_are_input_errors_that_say_what_is_wrong) {
  const std::pair<const char*, const char*> cases[] = {
    {"input:\n  - {name: a, type: pii, kinds: [email, phon]}\n", "unknown PII kind 'phon' (did you mean 'phone'?)"},
    {"input:\n  - {name: a, type: pii, colour: red}\n", "input[0].colour: unknown key"},
    {"input:\n  - {name: a, type: pii}\n  - {name: a, type: pii}\n", "duplicate rail name 'a'"},
    {"input:\n  - {type: pii}\n", "input[0]: missing key 'name'"},
    {"input:\n  - {name: t, type: topics, deny: [{topic: x, phrases: [y]}], on_trigger: mask}\n",
     "a topics rail cannot mask"},
    {"input:\n  - {name: k, type: keywords, keywords: []}\n", "input[0].keywords: needs at least one entry"},
    {"input:\n  - {name: k, type: keywords, keywords: ['  ']}\n", "input[0].keywords[0]: is empty"},
    {"input:\n  - {name: j, type: json_schema, schema: '{\"type\": \"thing\"}'}\n", "unknown type \"thing\""},
    {"input:\n  - {name: j, type: json_schema, schema: '{nope'}\n", "input[0].schema: is not valid JSON"},
    {"input:\n  - {name: s, type: self_check, prompt: 'no placeholder'}\n", "input[0].prompt: must contain {text}"},
    {"input:\n  - {name: l, type: length}\n", "needs max_chars or min_chars"},
    {"inputs: []\n", "inputs: unknown key (did you mean 'input'?)"},
    {"input: {name: a}\n", "input: expected a list of rails"},
    {"input:\n  - {name: 'a b', type: pii}\n", "must be letters, digits"},
  };
  for (const auto& [yaml, want] : cases) {
    auto e = error_of(yaml, with_models());
    EXPECT_NE(e.find(want), std::string::npos) << yaml << "\n got: " << e;
  }
}

TEST(rails_file, a_rail_without_its_model_is_an_error_or_skipped_when_asked) {
  const char* yaml = "input:\n  - {name: sc, type: self_check, prompt: 'judge {text}'}\n  - {name: p, type: pii}\n";
  auto e = error_of(yaml);
  EXPECT_NE(e.find("input[0]: a self_check rail needs a guard model, and none was given (rail 'sc')"),
            std::string::npos) << e;
  rails_load_options skip;
  skip.skip_model_rails = true;
  auto f = parse(yaml, {}, skip);
  ASSERT_EQ(f.input.size(), 1u);
  EXPECT_EQ(f.input[0]->name(), "p");
  ASSERT_EQ(f.skipped.size(), 1u);
  EXPECT_EQ(f.skipped[0], "input[0] 'sc' (needs a guard model)");
}

TEST(rails_file, loads_files_with_defaults_and_schema_files) {
  testing::temp_dir dir;
  dir.write("base.yaml", "output:\n  - {name: long, type: length, max_chars: 5}\n");
  dir.write("tool.json", R"({"type": "object", "required": ["q"]})");
  auto path = dir.write("rails.yaml", "defaults: [base.yaml]\ninput:\n  - {name: tool, type: json_schema, schema_file: tool.json}\n");
  auto f = load_rails_file(path);
  ASSERT_EQ(f.input.size(), 1u);
  ASSERT_EQ(f.output.size(), 1u);
  EXPECT_EQ(f.input[0]->check(rail_stage::input, R"({"q": 1})").action, rail_action::allow);
  auto v = f.input[0]->check(rail_stage::input, "```json\n{\"x\": 1}\n```");
  EXPECT_EQ(v.action, rail_action::block);
  EXPECT_EQ(v.reason, "schema: /: missing required property \"q\"");
  EXPECT_EQ(f.input[0]->check(rail_stage::input, "not json").reason, "not JSON");
}

TEST(rails, make_rails_adds_the_rails_files_output_rails_after_the_length_rail) {
  testing::temp_dir dir;
  guardrails_section g;
  g.max_output_chars = 100;
  g.rails_file = dir.write("r.yaml", R"(input:
  - {name: in_only, type: pii}
output:
  - {name: no_email, type: pii, kinds: [email], on_trigger: {action: penalize, weight: 2}}
)");
  auto rails = make_rails(g).output;
  ASSERT_EQ(rails.size(), 2u);
  EXPECT_EQ(rails[0]->name(), "max_length");
  EXPECT_EQ(rails[1]->name(), "no_email");
  auto v = rails[1]->check(rail_stage::output, "write to a@example.com");
  EXPECT_EQ(v.action, rail_action::penalize);
  EXPECT_DOUBLE_EQ(v.penalty, 2.0);
  EXPECT_EQ(v.reason, "1 email");
  g.rails_file = dir / "missing.yaml";
  EXPECT_THROW(make_rails(g), input_error);
}

TEST(rails, make_rails_builds_no_input_rails_so_a_files_input_model_rails_need_no_model_in_training) {
  guardrails_section g;
  g.rails_file = std::string(TROUPE_SOURCE_DIR) + "/examples/rails/with_models.yaml";
  auto rails = make_rails(g);
  EXPECT_TRUE(rails.input.empty());
  ASSERT_EQ(rails.output.size(), 3u) << "default.yaml's output rails";
  EXPECT_FALSE(rails_need_model(g));
  testing::temp_dir dir;
  g.rails_file = dir.write("r.yaml", "output:\n  - {name: judge, type: self_check, prompt: 'bad? {text}'}\n");
  EXPECT_TRUE(rails_need_model(g));
  g.max_output_chars = 5;
  g.rails_file = dir.write("clash.yaml", "output:\n  - {name: max_length, type: length, max_chars: 9}\n");
  EXPECT_THROW(rails_need_model(g), input_error) << "the name of guardrails.max_output_chars' rail is taken";
}

TEST(rails, make_rails_gives_the_rails_file_its_models) {
  testing::temp_dir dir;
  guardrails_section g;
  g.rails_file = dir.write("r.yaml", "output:\n  - {name: judge, type: self_check, prompt: 'bad? {text}'}\n");
  EXPECT_THROW(make_rails(g), input_error) << "no guard model";
  auto guard = std::make_shared<testing::fixed_guard>("yes");
  auto rails = std::move(make_rails(g, {nullptr, guard}).output);
  ASSERT_EQ(rails.size(), 1u);
  EXPECT_EQ(rails[0]->check(rail_stage::output, "x").action, rail_action::block);
  EXPECT_EQ(guard->last_prompt, "bad? x");
}

}  // namespace
}  // namespace troupe
