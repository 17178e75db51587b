// JSON Lines datasets for SFT and DPO: both formats read, every bad line refused with
// its file:line, generated arithmetic pairs, the stable held-out split.
#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"
#include "environments/datasets.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

// The input_error text of reading `content` as an SFT file (or "" when it reads).
std::string sft_error(const testing::temp_dir& dir, const std::string& content) {
  const auto path = dir.write("d.jsonl", content);
  try {
    read_sft_jsonl(path);
  } catch (const input_error& e) {
    return e.what();
  }
  return "";
}

std::string preference_error(const testing::temp_dir& dir, const std::string& content) {
  const auto path = dir.write("p.jsonl", content);
  try {
    read_preference_jsonl(path);
  } catch (const input_error& e) {
    return e.what();
  }
  return "";
}

TEST(datasets, reads_prompt_response_and_chat_lines_and_skips_blank_ones) {
  testing::temp_dir dir;
  const auto path = dir.write("d.jsonl",
                              "{\"prompt\": \"1+1=\", \"response\": \"2\", \"extra\": 5}\n"
                              "\n"
                              "{\"messages\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", "
                              "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\r\n");
  auto ex = read_sft_jsonl(path);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].source, path + ":1");
  EXPECT_FALSE(ex[0].chat);
  ASSERT_EQ(ex[0].prompt.size(), 1u);
  EXPECT_EQ(ex[0].prompt[0].content, "1+1=");
  EXPECT_EQ(ex[0].response, "2");
  EXPECT_EQ(ex[1].source, path + ":3");
  EXPECT_TRUE(ex[1].chat);
  ASSERT_EQ(ex[1].prompt.size(), 2u) << "the last (assistant) message is the response";
  EXPECT_EQ(ex[1].prompt[1].role, "user");
  EXPECT_EQ(ex[1].response, "yo");
}

TEST(datasets, every_bad_sft_line_is_refused_with_its_file_and_line) {
  testing::temp_dir dir;
  const std::string ok = "{\"prompt\": \"a\", \"response\": \"b\"}\n";
  struct bad_case {
    std::string line, says;
  };
  const std::vector<bad_case> cases = {
    {"{\"prompt\": \"a\", \"response\": ", "not valid JSON"},
    // nlohmann throws out_of_range, not parse_error, for a number past double's range.
    {"{\"prompt\": \"a\", \"response\": \"b\", \"score\": 1e999}", "number overflow parsing '1e999'"},
    {"[1, 2]", "expected a JSON object"},
    {"{\"prompt\": \"a\"}", "missing \"response\""},
    {"{\"response\": \"b\"}", "missing \"prompt\" (or \"messages\")"},
    {"{\"prompt\": 3, \"response\": \"b\"}", "\"prompt\" must be a string, got number"},
    {"{\"prompt\": \"a\", \"response\": \"\"}", "\"response\" is empty"},
    {"{\"messages\": []}", "\"messages\" must be a non-empty array"},
    {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}", "the last one the assistant's"},
    {"{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}",
     "messages[0]: unknown role \"robot\""},
    {"{\"messages\": [{\"role\": \"user\"}, {\"role\": \"assistant\", \"content\": \"y\"}]}",
     "messages[0]: missing \"content\""},
  };
  for (const auto& c : cases) {
    const auto err = sft_error(dir, ok + ok + c.line + "\n" + ok);
    EXPECT_NE(err.find(dir / "d.jsonl" + ":3: "), std::string::npos) << c.line << " -> " << err;
    EXPECT_NE(err.find(c.says), std::string::npos) << c.line << " -> " << err;
  }
  EXPECT_NE(sft_error(dir, "\n\n").find("no examples"), std::string::npos);
  try {
    read_sft_jsonl(dir / "missing.jsonl");
    FAIL() << "a missing file is an error";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.jsonl: cannot open"), std::string::npos) << e.what();
  }
}

TEST(datasets, preference_lines_need_prompt_chosen_and_rejected) {
  testing::temp_dir dir;
  const auto path = dir.write("p.jsonl", "{\"prompt\": \"1+1=\", \"chosen\": \"2\", \"rejected\": \"3\"}\n");
  auto ex = read_preference_jsonl(path);
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].chosen, "2");
  EXPECT_EQ(ex[0].rejected, "3");
  auto err = preference_error(dir, "{\"prompt\": \"a\", \"chosen\": \"b\"}\n");
  EXPECT_NE(err.find(":1: missing \"rejected\""), std::string::npos) << err;
  err = preference_error(dir, "{\"prompt\": \"a\", \"messages\": [], \"chosen\": \"b\", \"rejected\": \"c\"}\n");
  EXPECT_NE(err.find(":1: give either \"prompt\" or \"messages\", not both"), std::string::npos) << err;
}

TEST(datasets, arithmetic_pairs_prefer_the_answer_over_a_near_miss_and_splits_never_overlap) {
  arithmetic_options o;
  auto train = arithmetic_preference_examples(o, 3, split::train, 300);
  auto eval = arithmetic_preference_examples(o, 3, split::eval, 100);
  std::set<std::string> train_prompts;
  for (const auto& e : train) {
    train_prompts.insert(e.prompt[0].content);
    const auto c = std::stoll(e.chosen), r = std::stoll(e.rejected);
    EXPECT_NE(c, r);
    EXPECT_LE(std::llabs(c - r), 9);
    EXPECT_EQ(e.chosen.back(), '\n');
  }
  for (const auto& e : eval) EXPECT_EQ(train_prompts.count(e.prompt[0].content), 0u) << e.prompt[0].content;
  auto sft = arithmetic_sft_examples(o, 3, split::train, 300);
  for (std::size_t i = 0; i < sft.size(); ++i) {
    EXPECT_EQ(sft[i].prompt[0].content, train[i].prompt[0].content) << "the same problems";
    EXPECT_EQ(sft[i].response, train[i].chosen);
  }
}

TEST(datasets, hash_split_is_disjoint_complete_stable_and_near_the_fraction) {
  auto a = split_by_hash(1000, 0.2, 5);
  EXPECT_EQ(a.train.size() + a.eval.size(), 1000u);
  EXPECT_NEAR(static_cast<double>(a.eval.size()) / 1000.0, 0.2, 0.05);
  auto b = split_by_hash(1200, 0.2, 5);
  for (std::size_t i = 0; i < a.eval.size(); ++i) EXPECT_EQ(a.eval[i], b.eval[i]) << "a file that grows keeps its split";
  std::set<std::size_t> seen(a.train.begin(), a.train.end());
  for (auto i : a.eval) EXPECT_EQ(seen.count(i), 0u);
}

}  // namespace
}  // namespace troupe
