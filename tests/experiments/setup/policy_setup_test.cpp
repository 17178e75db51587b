// The policy setup the recipes share: prompts in the policy's chat format, and BOS only
// where the tokenizer has one.
#include <gtest/gtest.h>

#include "experiments/setup/policy_setup.hpp"

namespace troupe {
namespace {

const std::string fixtures = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/";

TEST(policy_setup, a_plain_prompt_starts_with_bos_only_when_the_tokenizer_has_one) {
  experiment_config cfg;
  cfg.policy.path = fixtures + "hf_special_ids/none";  // config.json sets no special ids
  cfg.policy.chat_format = "plain";
  const auto none = load_policy_tokenizer(cfg);
  ASSERT_FALSE(none.tok->bos_id().has_value());
  EXPECT_EQ(encode_prompt(none, "1+1="), none.tok->encode("1+1="));

  cfg.policy.path = fixtures + "hf_special_ids/zeros";  // bos = eos = pad = 0
  const auto zeros = load_policy_tokenizer(cfg);
  const auto ids = encode_prompt(zeros, "1+1=");
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), 0);
  EXPECT_EQ(std::vector<std::int32_t>(ids.begin() + 1, ids.end()), zeros.tok->encode("1+1="));
  EXPECT_EQ(zeros.pad_id, 0);
}

TEST(policy_setup, the_tokenizer_and_chat_format_overload_gives_the_setups_prompt) {
  experiment_config cfg;
  cfg.policy.path = fixtures + "hf/llama";
  cfg.policy.chat_format = "llama3";
  const auto p = load_policy_tokenizer(cfg);
  EXPECT_EQ(encode_prompt(*p.tok, p.chat, "12 + 30 ="), encode_prompt(p, "12 + 30 ="));
  EXPECT_NE(encode_prompt(*p.tok, chat_format::plain, "12 + 30 ="), encode_prompt(p, "12 + 30 ="));
}

}  // namespace
}  // namespace troupe
