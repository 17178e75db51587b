// What the offline experiments share: the policy setup (small or Hugging Face), the
// resumable data order, and the cadence of evaluations and checkpoints.
#include <gtest/gtest.h>

#include "experiments/experiment.hpp"
#include "experiments/offline/offline_run.hpp"
#include "experiments/setup/policy_setup.hpp"

namespace troupe {
namespace {

TEST(offline_run, a_sampler_that_skips_draws_where_one_that_drew_would) {
  // 7 examples in batches of 3: draws cross epochs, and skips end mid-epoch and at its end.
  for (std::size_t skipped : {0u, 3u, 6u, 7u, 14u, 30u}) {
    epoch_sampler drawn(7, 42), skipping(7, 42);
    for (std::size_t i = 0; i < skipped; ++i) drawn.next(1);
    skipping.skip(skipped);
    EXPECT_EQ(skipping.epoch(), drawn.epoch()) << skipped;
    for (int b = 0; b < 4; ++b) EXPECT_EQ(skipping.next(3), drawn.next(3)) << skipped << ", batch " << b;
  }
}

TEST(offline_run, due_is_every_n_steps_but_not_at_the_last) {
  EXPECT_TRUE(due(5, 5, 20));
  EXPECT_TRUE(due(5, 15, 20));
  EXPECT_FALSE(due(5, 20, 20)) << "the end has its own evaluation and checkpoint";
  EXPECT_FALSE(due(5, 7, 20));
  EXPECT_FALSE(due(0, 5, 20)) << "0 is never";
}

TEST(offline_run, a_hugging_face_policy_brings_its_tokenizer_chat_format_and_context) {
  experiment_config cfg;
  cfg.policy.path = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/hf/llama";
  cfg.policy.chat_format = "llama3";
  validate_policy(cfg.policy);
  const auto p = load_policy_tokenizer(cfg);
  EXPECT_EQ(p.chat, chat_format::llama3);
  EXPECT_EQ(p.config.vocab_size, 320);
  EXPECT_EQ(p.pad_id, *p.tok->eos_id()) << "no pad token: padding uses eos (masked out anyway)";
  EXPECT_EQ(p.tok->decode(encode_prompt(p, "1+1=")),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n1+1=<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  cfg.policy.chat_format = "auto";  // the fixture's tokenizer_config.json has no template: a base model
  EXPECT_EQ(load_policy_tokenizer(cfg).chat, chat_format::plain);
  const auto off = make_offline_tokenizer(cfg);
  EXPECT_EQ(off.tokenize.max_length, 256) << "data.max_length 0: the model's context";

  experiment_config small;  // the char model: BOS, then the text
  const auto s = load_policy(small);
  EXPECT_EQ(s.tok->decode(encode_prompt(s, "1+1=")), "<bos>1+1=");
  EXPECT_EQ(s.model->config().vocab_size, static_cast<std::int64_t>(s.tok->vocab_size()));
  cfg.policy.path = "nowhere";
  EXPECT_THROW(validate_policy(cfg.policy), input_error);
}

}  // namespace
}  // namespace troupe
