// The labeled set (tests/fixtures/rails/cases.jsonl, made by make_cases.py) against
// examples/rails/default.yaml: the quality bar the example rails file must keep.
#include <gtest/gtest.h>

#include <cstdio>
#include <iostream>
#include <set>

#include "core/error.hpp"
#include "guardrails/rails_eval.hpp"

namespace troupe {
namespace {

const std::string root = TROUPE_SOURCE_DIR;

TEST(labeled_set, default_rails_find_pii_with_recall_above_095_and_false_positives_below_005) {
  rails_engine engine(load_rails_file(root + "/examples/rails/default.yaml"));
  auto cases = read_rails_cases(root + "/tests/fixtures/rails/cases.jsonl");
  ASSERT_GE(cases.size(), 200u);
  auto rep = evaluate_rails(engine, cases);

  const std::set<std::string> pii = {"email", "phone", "credit_card", "iban", "ipv4", "ipv6", "ssn", "pii_output"};
  std::int64_t pii_cases = 0, pii_found = 0;
  for (const auto& c : rep.categories) {
    std::cout << "[ info ] " << c.category << ": detected " << c.detected << "/" << c.should_block
              << ", false positives " << c.false_positives << "/" << c.should_allow << '\n';
    if (pii.count(c.category) != 0) {
      EXPECT_GT(c.should_block, 0) << c.category;
      pii_cases += c.should_block;
      pii_found += c.detected;
    }
  }
  const double recall = double(pii_found) / double(pii_cases);
  const double fp = rep.overall.false_positive_rate();
  std::cout << "[ info ] PII recall " << recall << " (" << pii_found << "/" << pii_cases << "), false-positive rate "
            << fp << " (" << rep.overall.false_positives << "/" << rep.overall.should_allow << "), detection rate "
            << rep.overall.detection_rate() << '\n';
  EXPECT_GE(recall, 0.95);
  EXPECT_LE(fp, 0.05);
  EXPECT_GE(rep.overall.should_allow, 80) << "enough look-alikes to measure false positives";
}

TEST(rails_cases, a_bad_line_is_an_error_naming_file_and_line) {
  const std::string path = ::testing::TempDir() + "/cases-bad.jsonl";
  const std::pair<const char*, const char*> bad[] = {
    {"{\"text\": \"x\", \"stage\": \"input\"}", ":2: missing \"expect\""},
    {"not json", ":2: not valid JSON"},
    {"[1]", ":2: expected a JSON object, got array"},
    {"{\"text\": \"x\", \"stage\": \"middle\", \"expect\": \"block\"}", ":2: \"stage\" must be \"input\" or \"output\""},
    {"{\"text\": 3, \"stage\": \"input\", \"expect\": \"block\"}", ":2: \"text\" must be a string, got number"},
    {"{\"text\": \"x\", \"stage\": \"input\", \"expect\": \"maybe\"}", ":2: \"expect\" must be \"block\" or \"allow\""},
  };
  for (const auto& [line, want] : bad) {
    FILE* f = std::fopen(path.c_str(), "w");
    std::fprintf(f, "{\"text\": \"ok\", \"stage\": \"input\", \"expect\": \"allow\"}\n%s\n", line);
    std::fclose(f);
    try {
      read_rails_cases(path);
      ADD_FAILURE() << "no error for " << line;
    } catch (const input_error& e) {
      EXPECT_NE(std::string(e.what()).find(path + want), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_rails_cases(path + ".missing"), input_error);
}

TEST(rails_eval, latency_percentiles_are_nearest_rank) {
  auto s = summarize_latency({5, 1, 4, 2, 3});
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.p50_ms, 3);
  EXPECT_DOUBLE_EQ(s.p99_ms, 5);
  EXPECT_EQ(summarize_latency({}).count, 0);
}

}  // namespace
}  // namespace troupe
