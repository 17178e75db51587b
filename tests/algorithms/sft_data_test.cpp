// Tokenizing SFT examples: prompt tokens out of the loss, chat formatting, truncation;
// padded and packed layouts.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.hpp"
#include "algorithms/sft_data.hpp"

namespace troupe {
namespace {

std::unique_ptr<tokenizer> char_tok() {
  auto tok = make_char_tokenizer("0123456789+-=\nabcdefghijklmnopqrstuvwxyz ", {"<pad>", "<bos>", "<eos>"});
  tok->set_special_ids(tok->token_to_id("<bos>"), tok->token_to_id("<eos>"), tok->token_to_id("<pad>"));
  return tok;
}

TEST(sft_data, prompt_tokens_are_masked_and_the_response_ends_with_eos) {
  auto tok = char_tok();
  auto r = tokenize_example(*tok, {}, {{"user", "12+3="}}, false, "15\n", "t:1");
  EXPECT_FALSE(r.truncated);
  const auto& ex = r.example;
  ASSERT_EQ(ex.prompt.size(), 6u) << "<bos> and five characters";
  EXPECT_EQ(ex.prompt[0], *tok->bos_id());
  ASSERT_EQ(ex.response.size(), 4u) << "three characters and <eos>";
  EXPECT_EQ(ex.response.back(), *tok->eos_id());
  auto rows = pad_examples({ex});
  ASSERT_EQ(rows.ids.size(), 1u);
  EXPECT_FALSE(rows.packed());
  const std::vector<std::uint8_t> mask = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
  EXPECT_EQ(rows.loss_mask[0], mask);
  EXPECT_EQ(tok->decode(rows.ids[0]), "<bos>12+3=15\n<eos>");
}

TEST(sft_data, chat_examples_learn_only_the_last_assistant_turn) {
  auto tok = char_tok();
  tokenize_options o;
  o.format = chat_format::plain;  // a char model's format: contents concatenated
  auto r = tokenize_example(*tok, o, {{"system", "be brief "}, {"user", "hi "}}, true, "yo", "t:2");
  EXPECT_EQ(tok->decode(r.example.prompt), "<bos>be brief hi ");
  EXPECT_EQ(tok->decode(r.example.response), "yo<eos>");
}

// A Hugging Face tokenizer with BOS and EOS (the llama fixture: <|begin_of_text|>,
// <|eot_id|>) in the llama3 format: the template writes both, so neither is doubled;
// outside a chat format they are added as for the char models.
TEST(sft_data, a_chat_template_writes_its_own_special_tokens) {
  auto tok = load_tokenizer_dir(std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/hf/llama");
  ASSERT_TRUE(tok->bos_id() && tok->eos_id());
  tokenize_options o;
  o.format = chat_format::llama3;
  auto r = tokenize_example(*tok, o, {{"user", "12+30="}}, true, "42", "t:4");
  EXPECT_EQ(tok->decode(r.example.prompt),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n12+30=<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(std::count(r.example.prompt.begin(), r.example.prompt.end(), *tok->bos_id()), 1);
  EXPECT_EQ(tok->decode(r.example.response), "42<|eot_id|>");
  auto plain = tokenize_example(*tok, o, {{"user", "12+30="}}, false, "42", "t:5");
  EXPECT_EQ(tok->decode(plain.example.prompt), "<|begin_of_text|>12+30=");
  EXPECT_EQ(tok->decode(plain.example.response), "42<|eot_id|>");
}

TEST(sft_data, long_responses_are_cut_and_prompts_that_leave_no_room_are_refused) {
  auto tok = char_tok();
  tokenize_options o;
  o.max_length = 8;
  auto r = tokenize_example(*tok, o, {{"user", "1+1="}}, false, "123456789", "t:3");
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.example.size(), 8u);
  EXPECT_EQ(tok->decode(r.example.response), "123");
  try {
    tokenize_example(*tok, o, {{"user", "1234567+1="}}, false, "2", "data.jsonl:7");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("data.jsonl:7: the prompt is 11 tokens"), std::string::npos) << e.what();
  }
  try {
    tokenize_example(*tok, {}, {{"user", "1+1="}}, false, "TWO", "data.jsonl:9");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("data.jsonl:9: the response: "), std::string::npos) << e.what();
  }
}

TEST(sft_data, packing_fills_rows_first_fit_and_numbers_each_example) {
  auto tok = char_tok();
  std::vector<tokenized_example> ex;
  for (const char* p : {"1+1=", "22+33=", "3-1=", "9+9="})
    ex.push_back(tokenize_example(*tok, {}, {{"user", p}}, false, "7\n", p).example);
  // sizes: 8, 10, 8, 8
  auto rows = pack_examples(ex, 20);
  ASSERT_TRUE(rows.packed());
  ASSERT_EQ(rows.ids.size(), 2u);
  EXPECT_EQ(rows.ids[0].size(), 18u) << "examples 0 and 1";
  EXPECT_EQ(rows.ids[1].size(), 16u) << "examples 2 and 3";
  std::vector<std::int32_t> seg0(8, 1);
  seg0.insert(seg0.end(), 10, 2);
  EXPECT_EQ(rows.segments[0], seg0);
  EXPECT_EQ(rows.tokens(), 34);
  auto padded = pad_examples(ex);
  EXPECT_EQ(padded.tokens(), rows.tokens());
  std::int64_t trained_padded = 0, trained_packed = 0;
  for (const auto& m : padded.loss_mask) trained_padded += std::count(m.begin(), m.end(), 1);
  for (const auto& m : rows.loss_mask) trained_packed += std::count(m.begin(), m.end(), 1);
  EXPECT_EQ(trained_packed, trained_padded);
  EXPECT_THROW(pack_examples(ex, 9), input_error) << "an example longer than a row";
}

TEST(sft_data, pairs_alternate_chosen_and_rejected_rows) {
  auto tok = char_tok();
  auto c = tokenize_example(*tok, {}, {{"user", "1+1="}}, false, "2\n", "p").example;
  auto r = tokenize_example(*tok, {}, {{"user", "1+1="}}, false, "3\n", "p").example;
  auto rows = pair_examples({{c, r}, {r, c}});
  ASSERT_EQ(rows.ids.size(), 4u);
  EXPECT_EQ(tok->decode(rows.ids[0]), "<bos>1+1=2\n<eos>");
  EXPECT_EQ(tok->decode(rows.ids[1]), "<bos>1+1=3\n<eos>");
  EXPECT_EQ(tok->decode(rows.ids[2]), "<bos>1+1=3\n<eos>");
}

}  // namespace
}  // namespace troupe
