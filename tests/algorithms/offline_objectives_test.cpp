// The SFT and DPO objectives on a trainer: packed rows compute what padded rows compute
// (attention kept inside each example), the loss leaves prompt tokens out, and DPO's
// reference stays frozen while the policy learns.
#include <gtest/gtest.h>

#include "policies/model_config.hpp"
#include "algorithms/offline_objectives.hpp"

namespace troupe {
namespace {

constexpr std::int64_t vocab = 40;
constexpr std::int64_t pad_id = 0;

causal_lm tiny_model(torch::Dtype dtype = torch::kFloat32) {
  policy_section p;
  p.hidden_size = 32;
  p.intermediate_size = 64;
  p.num_hidden_layers = 2;
  p.num_attention_heads = 4;
  p.num_key_value_heads = 2;
  p.max_position_embeddings = 64;
  auto c = small_model_config(p, vocab);
  c.initializer_range = 0.2;
  causal_lm m(c);
  m->init_weights(3);
  m->to(dtype);
  return m;
}

trainer_section sgd_like(std::int64_t microbatch) {
  trainer_section t;
  t.lr = 1e-2;
  t.weight_decay = 0;
  t.max_grad_norm = 0;
  t.microbatch_size = microbatch;
  return t;
}

// Examples of varied prompt and response lengths, ids in [1, vocab).
std::vector<tokenized_example> examples(int n, std::uint64_t seed = 1) {
  std::vector<tokenized_example> out;
  std::uint64_t x = seed;
  auto next = [&] {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::int32_t>(1 + (x >> 33) % (vocab - 1));
  };
  for (int i = 0; i < n; ++i) {
    tokenized_example e;
    for (int k = 0; k < 2 + i % 4; ++k) e.prompt.push_back(next());
    for (int k = 0; k < 1 + (i * 3) % 5; ++k) e.response.push_back(next());
    out.push_back(e);
  }
  return out;
}

double param_distance(causal_lm& a, causal_lm& b) {
  double d = 0;
  auto pa = a->parameters(), pb = b->parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) d = std::max(d, (pa[i] - pb[i]).abs().max().item<double>());
  return d;
}

TEST(offline_objectives, packed_and_padded_rows_give_the_same_loss_and_update) {
  auto ex = examples(12);
  auto padded = pad_examples(ex), packed = pack_examples(ex, 24);
  ASSERT_LT(packed.ids.size(), padded.ids.size()) << "packing put several examples in a row";
  auto m1 = tiny_model(), m2 = tiny_model();
  trainer t1(m1, sgd_like(4), false), t2(m2, sgd_like(2), false);
  const auto e1 = sft_eval(t1, padded, pad_id), e2 = sft_eval(t2, packed, pad_id);
  EXPECT_EQ(e1.tokens, e2.tokens);
  EXPECT_NEAR(e1.sum / e1.tokens, e2.sum / e2.tokens, 1e-5);
  auto s1 = sft_step(t1, padded, pad_id), s2 = sft_step(t2, packed, pad_id);
  EXPECT_NEAR(s1.at("sft/loss"), s2.at("sft/loss"), 1e-5);
  EXPECT_NEAR(s1.at("sft/loss"), e1.sum / e1.tokens, 1e-5) << "the step's loss is the token mean NLL";
  EXPECT_NEAR(s1.at("sft/grad_norm"), s2.at("sft/grad_norm"), 1e-4);
  EXPECT_LT(param_distance(m1, m2), 1e-5) << "the same update";
}

TEST(offline_objectives, packing_without_segment_isolation_would_change_the_loss) {
  // The check above has teeth: the same packed rows with attention crossing examples
  // (no segment_ids, positions running on) score differently.
  auto ex = examples(12);
  auto packed = pack_examples(ex, 24);
  auto m = tiny_model();
  trainer t(m, sgd_like(4), false);
  auto isolated = sft_eval(t, packed, pad_id);
  auto crossing = packed;
  crossing.segments.clear();
  auto leaky = sft_eval(t, crossing, pad_id);
  EXPECT_GT(std::abs(isolated.sum - leaky.sum), 1e-2);
}

TEST(offline_objectives, the_loss_ignores_prompt_tokens) {
  auto ex = examples(6);
  auto rows = pad_examples(ex);
  auto m = tiny_model();
  trainer t(m, sgd_like(8), false);
  auto base = sft_eval(t, rows, pad_id);
  std::int64_t response_tokens = 0;
  for (const auto& e : ex) response_tokens += static_cast<std::int64_t>(e.response.size());
  EXPECT_EQ(base.tokens, static_cast<double>(response_tokens));
  // With every response token masked out, nothing is left to score.
  auto none = rows;
  for (auto& mask : none.loss_mask) std::fill(mask.begin(), mask.end(), 0);
  EXPECT_EQ(sft_eval(t, none, pad_id).tokens, 0.0);
  auto batch = rows_to_batch(rows, pad_id);
  for (std::size_t r = 0; r < ex.size(); ++r)
    for (std::size_t k = 0; k < ex[r].prompt.size(); ++k)
      EXPECT_EQ(batch.response_mask[static_cast<std::int64_t>(r)][static_cast<std::int64_t>(k)].item<float>(), 0.0f);
}

TEST(offline_objectives, dpo_trains_the_policy_and_leaves_the_reference_frozen) {
  auto prompts = examples(8, 5);
  std::vector<preference_tokens> pairs;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    auto chosen = prompts[i], rejected = prompts[i];
    rejected.response[0] = static_cast<std::int32_t>(1 + (chosen.response[0] % (vocab - 1)));  // differs
    pairs.push_back({chosen, rejected});
  }
  auto rows = pair_examples(pairs);
  auto m = tiny_model();
  auto start = frozen_copy(m);
  auto cfg = sgd_like(4);
  cfg.lr = 3e-3;
  trainer t(m, cfg, /*with_reference=*/true);
  ASSERT_NE(t.reference(), nullptr);
  dpo_config dpo;
  dpo.reference_policy_kl_penalty = 0.5;
  auto before = dpo_eval(t, dpo, rows, pad_id);
  EXPECT_EQ(before.at("dpo/eval_accuracy"), 0.0) << "policy = reference: no pair has a positive margin";
  EXPECT_NEAR(before.at("dpo/eval_loss"), std::log(2.0), 1e-6);
  std::map<std::string, double> last;
  for (int i = 0; i < 20; ++i) last = dpo_step(t, dpo, rows, pad_id);
  for (const char* k : {"dpo/loss", "dpo/accuracy", "dpo/reward_margin", "dpo/rewards_chosen_mean",
                        "dpo/rewards_rejected_mean", "dpo/logps_chosen", "dpo/logps_rejected", "dpo/logps_accuracy",
                        "dpo/grad_norm", "dpo/lr"})
    EXPECT_EQ(last.count(k), 1u) << k;
  auto after = dpo_eval(t, dpo, rows, pad_id);
  EXPECT_GT(after.at("dpo/eval_accuracy"), 0.9);
  EXPECT_GT(after.at("dpo/eval_reward_margin"), 0.0);
  EXPECT_LT(after.at("dpo/eval_loss"), before.at("dpo/eval_loss"));
  EXPECT_GT(param_distance(m, start), 1e-3) << "the policy moved";
  EXPECT_EQ(param_distance(*t.reference(), start), 0.0) << "the reference did not";
  for (auto& p : (*t.reference())->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(offline_objectives, dpo_refuses_an_odd_microbatch_and_half_pairs) {
  auto m = tiny_model();
  trainer t(m, sgd_like(3), true);
  auto ex = examples(2);
  auto rows = pair_examples({{ex[0], ex[1]}});
  EXPECT_THROW(dpo_step(t, dpo_config{}, rows, pad_id), input_error);
  trainer t2(m, sgd_like(2), true);
  auto odd = pad_examples(examples(3));
  EXPECT_THROW(dpo_step(t2, dpo_config{}, odd, pad_id), input_error);
}

TEST(offline_objectives, distillation_brings_the_student_to_the_teacher_and_leaves_the_teacher_alone) {
  auto rows = pad_examples(examples(8, 9));
  policy_section p;
  p.hidden_size = 48;
  p.intermediate_size = 96;
  p.num_hidden_layers = 2;
  p.num_attention_heads = 4;
  p.num_key_value_heads = 2;
  auto tc = small_model_config(p, vocab);
  tc.initializer_range = 0.3;  // a peaked teacher
  causal_lm teacher(tc);
  teacher->init_weights(11);
  auto teacher_start = frozen_copy(teacher);
  auto student = tiny_model();
  auto cfg = sgd_like(4);
  cfg.lr = 1e-2;
  trainer t(student, cfg, false);
  distillation_config d;
  d.topk_logits_k = 8;
  auto before = distill_eval(t, teacher, d, rows, pad_id);
  std::map<std::string, double> last;
  for (int i = 0; i < 15; ++i) last = distill_step(t, teacher, d, rows, pad_id);
  for (const char* k : {"distill/loss", "distill/forward_kl", "distill/reverse_kl", "distill/grad_norm"})
    EXPECT_EQ(last.count(k), 1u) << k;
  auto after = distill_eval(t, teacher, d, rows, pad_id);
  EXPECT_LT(after.at("distill/eval_forward_kl"), 0.5 * before.at("distill/eval_forward_kl"));
  EXPECT_LT(after.at("distill/eval_loss"), before.at("distill/eval_loss"));
  EXPECT_EQ(param_distance(teacher, teacher_start), 0.0);
}

}  // namespace
}  // namespace troupe
