// Gradients on padded batches against PyTorch + transformers, for checkpoints whose
// special ids are set the ways real ones set them (fixtures made by
// tests/fixtures/make_padded_grad_fixtures.py): Llama 3 style (bos, no pad), Qwen2 style
// (pad = eos, no bos), pad = bos = eos = 0, and none set. The fixture lays the batch out
// as TRL does (left-padded prompts, right-padded completions); troupe lays the same rows
// out its own way (prompt + completion, right-padded), so equal gradients also say that
// masks and positions come from lengths, never from token values.
#include <gtest/gtest.h>

#include "policies/checkpoint.hpp"
#include "algorithms/losses.hpp"
#include "algorithms/offline_objectives.hpp"
#include "algorithms/trainer.hpp"
#include "tests/support/hf_reference.hpp"

namespace troupe {
namespace {

const std::string fixtures = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/hf_special_ids/";

// The fixture's rows in troupe's layout, with the GRPO inputs moved to it.
struct padded_case {
  causal_lm model{nullptr};
  train_batch batch;            // (B, T) right-padded prompt + completion rows
  torch::Tensor old_logprobs;   // (B, T) at the completion positions
  torch::Tensor advantages;     // (B)
  testing::hf_reference ref;
  explicit padded_case(const std::string& dir) : ref(dir) {
    model = load_pretrained(dir);
    auto prompts = ref["prompts"], prompt_mask = ref["prompt_mask"];              // (B, P)
    auto completions = ref["completions"], completion_mask = ref["completion_mask"];  // (B, C)
    auto old_c = ref["old_logprobs"];                                               // (B, C)
    const auto B = prompts.size(0), P = prompts.size(1), C = completions.size(1);
    token_rows rows;
    std::vector<std::pair<std::int64_t, std::int64_t>> spans;  // (first completion slot, length) per row
    for (std::int64_t b = 0; b < B; ++b) {
      std::vector<std::int32_t> ids;
      std::vector<std::uint8_t> loss;
      for (std::int64_t t = 0; t < P; ++t)
        if (prompt_mask[b][t].item<std::int64_t>()) ids.push_back(static_cast<std::int32_t>(prompts[b][t].item<std::int64_t>())), loss.push_back(0);
      spans.emplace_back(static_cast<std::int64_t>(ids.size()), completion_mask[b].sum().item<std::int64_t>());
      for (std::int64_t t = 0; t < C; ++t)
        if (completion_mask[b][t].item<std::int64_t>()) ids.push_back(static_cast<std::int32_t>(completions[b][t].item<std::int64_t>())), loss.push_back(1);
      rows.ids.push_back(std::move(ids));
      rows.loss_mask.push_back(std::move(loss));
    }
    // Padding with a value that is no special id of any fixture: what fills padding
    // must not matter either.
    batch = rows_to_batch(rows, 7);
    old_logprobs = torch::zeros(batch.input_ids.sizes(), torch::kFloat32);
    for (std::int64_t b = 0; b < B; ++b)
      old_logprobs[b].narrow(0, spans[static_cast<std::size_t>(b)].first, spans[static_cast<std::size_t>(b)].second)
          .copy_(old_c[b].narrow(0, 0, spans[static_cast<std::size_t>(b)].second));
    advantages = ref["advantages"];
  }
};

// Largest |troupe - transformers| over the largest |transformers|, over every parameter
// of the model (each compared with its own scale).
double worst_relative_gradient_error(causal_lm& model, const testing::hf_reference& ref, const std::string& prefix) {
  double worst = 0;
  for (const auto& p : model->named_parameters()) {
    auto expected = ref[prefix + p.key()];
    EXPECT_TRUE(p.value().grad().defined()) << p.key() << " has no gradient";
    if (!p.value().grad().defined()) return 1e9;
    const double scale = expected.abs().max().item<double>();
    const double diff = (p.value().grad() - expected).abs().max().item<double>();
    EXPECT_TRUE(std::isfinite(diff)) << p.key();
    worst = std::max(worst, diff / std::max(scale, 1e-12));
  }
  return worst;
}

class special_ids : public ::testing::TestWithParam<std::string> {};

TEST_P(special_ids, sft_gradients_on_a_padded_batch_equal_transformers_to_1e_5_relative) {
  padded_case c(fixtures + GetParam());
  const auto mask = c.batch.response_mask.to(torch::kFloat32);
  auto out = nll_loss(token_logprobs(c.model, c.batch), mask, mask.sum().item<double>());
  out.loss.backward();
  EXPECT_LT(worst_relative_gradient_error(c.model, c.ref, "sft/"), 1e-5);
}

TEST_P(special_ids, grpo_gradients_on_a_padded_batch_equal_transformers_to_1e_5_relative) {
  padded_case c(fixtures + GetParam());
  clipped_pg_config cfg;
  cfg.eps_low = cfg.eps_high = 0.2;
  cfg.reference_policy_kl_penalty = 0;
  cfg.token_level_loss = true;
  pg_inputs in;
  in.lp = token_logprobs(c.model, c.batch);
  in.lp_old = c.old_logprobs;
  in.advantages = c.advantages;
  in.mask = c.batch.response_mask.to(torch::kFloat32);
  auto out = clipped_pg_loss(cfg, in, global_totals(c.batch));
  ASSERT_TRUE(std::isfinite(out.loss.item<double>()));
  out.loss.backward();
  EXPECT_LT(worst_relative_gradient_error(c.model, c.ref, "grpo/"), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(hf, special_ids, ::testing::Values("llama3", "qwen2", "zeros", "none"));

// The pad row is out of the embedding's backward only where config.json names a pad id
// inside the vocabulary, as transformers builds nn.Embedding(padding_idx=pad_token_id).
TEST(special_ids_embedding, the_pad_row_gets_no_gradient_from_lookups_and_other_rows_do) {
  auto model = load_pretrained(fixtures + "zeros");  // tied: the row still gets lm_head's gradient
  ASSERT_EQ(model->config().padding_idx(), std::optional<std::int64_t>(0));
  auto ids = torch::tensor({{0, 5, 0, 9}}, torch::kInt64);
  auto hidden = model->hidden_states(ids, torch::ones_like(ids));  // (1, 4, H)
  hidden.sum().backward();                                          // through the lookup only
  const auto& g = model->model->embed_tokens->weight.grad();        // (V, H)
  EXPECT_EQ(g[0].abs().max().item<double>(), 0.0);
  EXPECT_GT(g[5].abs().max().item<double>(), 0.0);
  model_config c = model->config();
  c.pad_token_id = c.vocab_size;  // outside the vocabulary: no pad row
  EXPECT_FALSE(c.padding_idx().has_value());
  c.pad_token_id.reset();
  EXPECT_FALSE(c.padding_idx().has_value());
}

}  // namespace
}  // namespace troupe
