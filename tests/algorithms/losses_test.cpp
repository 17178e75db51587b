// Losses: hand-worked cases (the arithmetic is in the comments), golden values from an
// independent PyTorch reference (tests/fixtures/losses/make_loss_goldens.py), the
// microbatch-additivity contract, finite-difference gradient checks, and the rejected
// settings. Everything runs in float64.
#include "algorithms/losses.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "policies/safetensors.hpp"

namespace troupe {
namespace {

using nlohmann::json;
using torch::indexing::Slice;

const std::string fixtures = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/losses";
constexpr double golden_tol = 1e-10;    // against the Python reference
constexpr double additive_tol = 1e-12;  // microbatches against one call

torch::Tensor f64(std::initializer_list<double> xs) { return torch::tensor(std::vector<double>(xs), torch::kDouble); }
torch::Tensor f64_2d(std::vector<std::vector<double>> rows) {
  std::vector<torch::Tensor> ts;
  for (auto& r : rows) ts.push_back(torch::tensor(r, torch::kDouble));
  return torch::stack(ts);
}

// Relative-or-absolute closeness: |a - b| <= tol max(1, |b|).
bool close(double a, double b, double tol) { return std::abs(a - b) <= tol * std::max(1.0, std::abs(b)); }

double max_rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  auto d = (a.detach() - b.detach()).abs() / b.detach().abs().clamp_min(1.0);
  return d.numel() ? d.max().item<double>() : 0.0;
}

// ---- goldens ---------------------------------------------------------------------------------

struct goldens {
  safetensors_file file = safetensors_file::open(fixtures + "/goldens.safetensors");
  json cases = [] {
    std::ifstream in(fixtures + "/goldens.json");
    return json::parse(in);
  }();

  torch::Tensor get(const std::string& name) const {
    const st_tensor_view& v = file.tensor(name);
    auto dtype = v.dtype == st_dtype::f64 ? torch::kDouble : torch::kLong;
    EXPECT_TRUE(v.dtype == st_dtype::f64 || v.dtype == st_dtype::i64) << name;
    torch::Tensor t = torch::empty(v.shape, dtype);
    std::memcpy(t.data_ptr(), v.data, v.size_bytes);
    return t;
  }
};

const goldens& golden() {
  static const goldens g;
  return g;
}

clipped_pg_config pg_config_of(const json& j) {
  clipped_pg_config c;
  c.eps_low = j["ratio_clip_min"];
  c.eps_high = j["ratio_clip_max"];
  c.ratio_clip_c = j["ratio_clip_c"];
  c.reference_policy_kl_penalty = j["reference_policy_kl_penalty"];
  c.reference_policy_kl_type = j["reference_policy_kl_type"];
  c.kl_input_clamp_value = j["kl_input_clamp_value"];
  c.kl_output_clamp_value = j["kl_output_clamp_value"];
  c.use_on_policy_kl_approximation = j["use_on_policy_kl_approximation"];
  c.token_level_loss = j["token_level_loss"];
  c.use_importance_sampling_correction = j["use_importance_sampling_correction"];
  c.truncated_importance_sampling_type = j["truncated_importance_sampling_type"];
  c.truncated_importance_sampling_ratio = j["truncated_importance_sampling_ratio"];
  c.truncated_importance_sampling_ratio_min = j["truncated_importance_sampling_ratio_min"];
  c.sequence_level_importance_ratios = j["sequence_level_importance_ratios"];
  return c;
}

dpo_config dpo_config_of(const json& j) {
  dpo_config c;
  c.reference_policy_kl_penalty = j["reference_policy_kl_penalty"];
  c.preference_loss = j["preference_loss"];
  c.preference_loss_weight = j["preference_loss_weight"];
  c.sft_loss_weight = j["sft_loss_weight"];
  c.preference_average_log_probs = j["preference_average_log_probs"];
  c.sft_average_log_probs = j["sft_average_log_probs"];
  return c;
}

distillation_config distill_config_of(const json& j) {
  distillation_config c;
  c.kl_type = j["kl_type"];
  c.mixed_kl_weight = j["mixed_kl_weight"];
  c.topk_logits_k = j["topk_logits_k"];
  return c;
}

// Every metric the reference computed matches, and there are no others.
void expect_metrics(const loss_metrics& got, const json& want, const std::string& where, double tol) {
  auto values = got.finalize();
  for (const auto& [name, v] : want.items()) {
    ASSERT_TRUE(values.count(name)) << where << ": metric " << name << " missing";
    EXPECT_TRUE(close(values[name], v.get<double>(), tol))
        << where << ": " << name << " = " << values[name] << ", reference " << v.get<double>();
  }
  for (const auto& [name, v] : values) EXPECT_TRUE(want.contains(name)) << where << ": unexpected metric " << name;
}

pg_inputs pg_inputs_of(const std::string& p, bool with_ref) {
  const auto& g = golden();
  pg_inputs in;
  in.lp = g.get(p + "lp").requires_grad_(true);
  in.lp_old = g.get(p + "lp_old");
  in.lp_gen = g.get(p + "lp_gen");
  if (with_ref) in.lp_ref = g.get(p + "lp_ref");
  in.advantages = g.get(p + "advantages");
  in.mask = g.get(p + "mask");
  return in;
}

// ---- hand-worked: clipped policy gradient ---------------------------------------------------------

// Three tokens with ratios 0.5, 1.0, 1.5 (lp_old = 0, lp = log r), eps 0.2: clip(r) =
// 0.8, 1.0, 1.2. Token-level over 3 tokens.
pg_inputs three_ratios(double advantage) {
  pg_inputs in;
  in.lp = torch::log(f64({0.5, 1.0, 1.5})).view({1, 3}).requires_grad_(true);
  in.lp_old = torch::zeros({1, 3}, torch::kDouble);
  in.advantages = f64({advantage});
  in.mask = torch::ones({1, 3}, torch::kDouble);
  return in;
}

clipped_pg_config no_kl() {
  clipped_pg_config c;
  c.reference_policy_kl_penalty = 0;
  return c;
}

TEST(grpo_loss, clips_ratio_above_one_plus_eps_for_positive_advantage) {
  // A = +1: l = max(-r, -clip(r)) per token:
  //   r 0.5: max(-0.5, -0.8) = -0.5   (unclipped, dl/dlp = -A r = -0.5)
  //   r 1.0: max(-1.0, -1.0) = -1.0   (dl/dlp = -1)
  //   r 1.5: max(-1.5, -1.2) = -1.2   (clipped: no gradient)
  // loss = (-0.5 - 1.0 - 1.2) / 3 = -0.9; grad = (-0.5, -1, 0) / 3.
  pg_inputs in = three_ratios(1.0);
  loss_result r = clipped_pg_loss(no_kl(), in, {3, 1});
  EXPECT_NEAR(r.loss.item<double>(), -0.9, 1e-15);
  r.loss.backward();
  EXPECT_LT(max_rel_diff(in.lp.grad(), f64({-0.5 / 3, -1.0 / 3, 0.0}).view({1, 3})), 1e-15);
  // The clip is active on 1 token of 3, on the high side only.
  EXPECT_NEAR(r.metrics.value("clip_fraction_high"), 1.0 / 3, 1e-15);
  EXPECT_EQ(r.metrics.value("clip_fraction_low"), 0.0);
  // mean ratio (0.5 + 1 + 1.5) / 3 = 1; clamped (0.8 + 1 + 1.2) / 3 = 1.
  EXPECT_NEAR(r.metrics.value("probs_ratio"), 1.0, 1e-15);
  EXPECT_NEAR(r.metrics.value("probs_ratio_min"), 0.5, 1e-15);
  EXPECT_NEAR(r.metrics.value("probs_ratio_max"), 1.5, 1e-15);
}

TEST(grpo_loss, clips_ratio_below_one_minus_eps_for_negative_advantage) {
  // A = -1: l = max(r, clip(r)):
  //   r 0.5: max(0.5, 0.8) = 0.8   (clipped: no gradient)
  //   r 1.0: 1.0                   (dl/dlp = r = 1)
  //   r 1.5: max(1.5, 1.2) = 1.5   (unclipped: dl/dlp = 1.5)
  // loss = (0.8 + 1 + 1.5) / 3 = 1.1; grad = (0, 1, 1.5) / 3.
  pg_inputs in = three_ratios(-1.0);
  loss_result r = clipped_pg_loss(no_kl(), in, {3, 1});
  EXPECT_NEAR(r.loss.item<double>(), 1.1, 1e-15);
  r.loss.backward();
  EXPECT_LT(max_rel_diff(in.lp.grad(), f64({0.0, 1.0 / 3, 0.5}).view({1, 3})), 1e-15);
  EXPECT_NEAR(r.metrics.value("clip_fraction_low"), 1.0 / 3, 1e-15);
  EXPECT_EQ(r.metrics.value("clip_fraction_high"), 0.0);
  EXPECT_FALSE(r.metrics.contains("dual_clip_fraction"));  // dual clip is off
}

TEST(grpo_loss, dual_clip_caps_the_loss_of_negative_advantages_at_c) {
  // A = -1, c = 3, ratios 4 and 2: l = min(max(r, clip r), -A c):
  //   r 4: min(max(4, 1.2), 3) = 3   (capped: no gradient)
  //   r 2: min(max(2, 1.2), 3) = 2   (dl/dlp = 2)
  // loss = (3 + 2) / 2 = 2.5; grad = (0, 1); dual-clip fraction 1/2.
  clipped_pg_config c = no_kl();
  c.ratio_clip_c = 3;
  pg_inputs in;
  in.lp = torch::log(f64({4.0, 2.0})).view({1, 2}).requires_grad_(true);
  in.lp_old = torch::zeros({1, 2}, torch::kDouble);
  in.advantages = f64({-1.0});
  in.mask = torch::ones({1, 2}, torch::kDouble);
  loss_result r = clipped_pg_loss(c, in, {2, 1});
  EXPECT_NEAR(r.loss.item<double>(), 2.5, 1e-15);
  r.loss.backward();
  EXPECT_LT(max_rel_diff(in.lp.grad(), f64({0.0, 1.0}).view({1, 2})), 1e-15);
  EXPECT_NEAR(r.metrics.value("dual_clip_fraction"), 0.5, 1e-15);
  // A positive advantage is never dual-clipped: A = +1, r = 4: l = max(-4, -1.2) = -1.2.
  in.advantages = f64({1.0});
  EXPECT_NEAR(clipped_pg_loss(c, in, {2, 1}).loss.item<double>(), (-1.2 - 1.2) / 2, 1e-15);
}

TEST(grpo_loss, token_level_divides_by_global_tokens_and_sequence_level_by_sequences) {
  // r = 1 everywhere, so each token's term is -A. Sequence 0 has one token (A = 1),
  // sequence 1 three (A = 2, 2, 5):
  //   token level:    (-1 - 2 - 2 - 5) / 4 = -2.5
  //   sequence level: (-1 / 1 + (-2 - 2 - 5) / 3) / 2 = (-1 - 3) / 2 = -2
  pg_inputs in;
  in.lp = torch::full({2, 3}, -1.0, torch::kDouble).requires_grad_(true);
  in.lp_old = in.lp.detach().clone();
  in.advantages = f64_2d({{1, 0, 0}, {2, 2, 5}});
  in.mask = f64_2d({{1, 0, 0}, {1, 1, 1}});
  clipped_pg_config c = no_kl();
  EXPECT_NEAR(clipped_pg_loss(c, in, count_totals(in.mask)).loss.item<double>(), -2.5, 1e-15);
  c.token_level_loss = false;
  EXPECT_NEAR(clipped_pg_loss(c, in, count_totals(in.mask)).loss.item<double>(), -2.0, 1e-15);
  // Given a larger global batch (8 tokens, 4 sequences), the share halves.
  EXPECT_NEAR(clipped_pg_loss(c, in, {8, 4}).loss.item<double>(), -1.0, 1e-15);
}

TEST(grpo_loss, kl_estimators_match_their_formulas_and_clamp) {
  // lp - lp_ref = 0.5, so log r = lp_ref - lp = -0.5:
  //   k1 = -log r = 0.5;  k2 = (log r)^2 / 2 = 0.125;
  //   k3 = e^-0.5 - 1 + 0.5 = 0.10653065971263342
  torch::Tensor lp = f64({0.0}).view({1, 1}), ref = f64({-0.5}).view({1, 1});
  EXPECT_NEAR(kl_estimate(lp, ref, "k1", 20, 10).item<double>(), 0.5, 1e-15);
  EXPECT_NEAR(kl_estimate(lp, ref, "k2", 20, 10).item<double>(), 0.125, 1e-15);
  EXPECT_NEAR(kl_estimate(lp, ref, "k3", 20, 10).item<double>(), 0.10653065971263342, 1e-15);
  // log r = 30 is clamped to 20 before exp: k3 = e^20 - 21, then the output clamp 10.
  torch::Tensor far = f64({30.0}).view({1, 1});
  EXPECT_NEAR(kl_estimate(lp, far, "k3", 20, 0).item<double>(), std::exp(20.0) - 21, 1e-6);
  EXPECT_EQ(kl_estimate(lp, far, "k3", 20, 10).item<double>(), 10.0);
  // In the loss: beta 0.1, r = 1, A = 0, k3 of log r = -0.5 on both tokens:
  // loss = 0.1 * 0.10653065971263342.
  clipped_pg_config c;
  c.reference_policy_kl_penalty = 0.1;
  pg_inputs in;
  in.lp = torch::zeros({1, 2}, torch::kDouble).requires_grad_(true);
  in.lp_old = torch::zeros({1, 2}, torch::kDouble);
  in.lp_ref = torch::full({1, 2}, -0.5, torch::kDouble);
  in.advantages = f64({0.0});
  in.mask = torch::ones({1, 2}, torch::kDouble);
  loss_result r = clipped_pg_loss(c, in, {2, 1});
  EXPECT_NEAR(r.loss.item<double>(), 0.1 * 0.10653065971263342, 1e-15);
  EXPECT_NEAR(r.metrics.value("kl_penalty"), 0.10653065971263342, 1e-15);
}

TEST(grpo_loss, truncated_importance_sampling_caps_the_weight) {
  // lp_old - lp_gen = log 3, so w = 3; TIS with cap 2 uses w = 2. r = 1, A = 1: each
  // term is -A r = -1, times w: loss = -2 (and -3 with raw weights). The gradient goes
  // through r only: dl/dlp = -w A r = -2 per token, / 2 tokens.
  clipped_pg_config c = no_kl();
  c.use_importance_sampling_correction = true;
  pg_inputs in;
  in.lp = torch::zeros({1, 2}, torch::kDouble).requires_grad_(true);
  in.lp_old = torch::zeros({1, 2}, torch::kDouble);
  in.lp_gen = torch::full({1, 2}, -std::log(3.0), torch::kDouble);
  in.advantages = f64({1.0});
  in.mask = torch::ones({1, 2}, torch::kDouble);
  EXPECT_NEAR(clipped_pg_loss(c, in, {2, 1}).loss.item<double>(), -3.0, 1e-14);
  c.truncated_importance_sampling_type = "tis";
  c.truncated_importance_sampling_ratio = 2.0;
  loss_result r = clipped_pg_loss(c, in, {2, 1});
  EXPECT_NEAR(r.loss.item<double>(), -2.0, 1e-14);
  r.loss.backward();
  EXPECT_LT(max_rel_diff(in.lp.grad(), f64({-1.0, -1.0}).view({1, 2})), 1e-14);
  EXPECT_NEAR(r.metrics.value("sampling_importance_ratio"), 2.0, 1e-14);
  // token_mult_prob_error = exp(|lp_gen - lp_old|) = 3.
  EXPECT_NEAR(r.metrics.value("token_mult_prob_error"), 3.0, 1e-14);
}

TEST(grpo_loss, icepop_masks_tokens_outside_the_bounds_but_keeps_them_in_the_normalizer) {
  // Token 0: w = 3 (outside [0.5, 2]) -> term 0. Token 1: w = 1.5 (inside) -> -A r w =
  // -1.5. loss = (0 - 1.5) / 2 = -0.75; is_oob_ratio = 1/2.
  clipped_pg_config c = no_kl();
  c.use_importance_sampling_correction = true;
  c.truncated_importance_sampling_type = "icepop";
  c.truncated_importance_sampling_ratio_min = 0.5;
  c.truncated_importance_sampling_ratio = 2.0;
  pg_inputs in;
  in.lp = torch::zeros({1, 2}, torch::kDouble).requires_grad_(true);
  in.lp_old = torch::zeros({1, 2}, torch::kDouble);
  in.lp_gen = -torch::log(f64({3.0, 1.5})).view({1, 2});
  in.advantages = f64({1.0});
  in.mask = torch::ones({1, 2}, torch::kDouble);
  loss_result r = clipped_pg_loss(c, in, {2, 1});
  EXPECT_NEAR(r.loss.item<double>(), -0.75, 1e-14);
  EXPECT_NEAR(r.metrics.value("is_oob_ratio"), 0.5, 1e-15);
  r.loss.backward();
  EXPECT_LT(max_rel_diff(in.lp.grad(), f64({0.0, -0.75}).view({1, 2})), 1e-14);
}

TEST(gspo_loss, clips_the_sequence_ratio_of_the_mean_log_ratio) {
  // lp - lp_old = (0.1, 0.3): mean 0.2, s = e^0.2 = 1.2214 > 1.2 (eps 0.2). A = +1:
  // every token's term is max(-s, -1.2) = -1.2 (clipped, no gradient); the sequence
  // mean is -1.2, over 1 sequence. With A = -1: max(s, 1.2) = s, so the sequence mean
  // is s and ds/dlp_t = s / 2 for each of the 2 tokens.
  clipped_pg_config c = no_kl();
  c.sequence_level_importance_ratios = true;
  c.token_level_loss = false;
  pg_inputs in;
  in.lp = f64({0.1, 0.3}).view({1, 2}).requires_grad_(true);
  in.lp_old = torch::zeros({1, 2}, torch::kDouble);
  in.advantages = f64({1.0});
  in.mask = torch::ones({1, 2}, torch::kDouble);
  loss_result r = clipped_pg_loss(c, in, {2, 1});
  EXPECT_NEAR(r.loss.item<double>(), -1.2, 1e-15);
  r.loss.backward();
  EXPECT_EQ(in.lp.grad().abs().max().item<double>(), 0.0);
  in.lp.mutable_grad() = torch::Tensor();
  in.advantages = f64({-1.0});
  r = clipped_pg_loss(c, in, {2, 1});
  EXPECT_NEAR(r.loss.item<double>(), std::exp(0.2), 1e-15);
  r.loss.backward();
  EXPECT_LT(max_rel_diff(in.lp.grad(), torch::full({1, 2}, std::exp(0.2) / 2, torch::kDouble)), 1e-15);
}

TEST(grpo_loss, padding_values_never_reach_the_loss_or_the_gradient) {
  pg_inputs in = three_ratios(1.0);
  torch::Tensor lp = torch::cat({in.lp.detach(), f64({std::nan("")}).view({1, 1})}, 1).requires_grad_(true);
  in.lp = lp;
  in.lp_old = torch::cat({in.lp_old, f64({INFINITY}).view({1, 1})}, 1);
  in.advantages = f64({1.0});
  in.mask = f64_2d({{1, 1, 1, 0}});
  loss_result r = clipped_pg_loss(no_kl(), in, {3, 1});
  EXPECT_NEAR(r.loss.item<double>(), -0.9, 1e-15);
  r.loss.backward();
  EXPECT_TRUE(all_finite(lp.grad()));
  EXPECT_EQ(lp.grad()[0][3].item<double>(), 0.0);
}

// ---- goldens -------------------------------------------------------------------------------------------

TEST(grpo_loss, matches_the_independent_pytorch_reference) {
  for (const auto& cs : golden().cases["pg"]) {
    const std::string p = cs["prefix"], name = cs["name"];
    pg_inputs in = pg_inputs_of(p, cs["with_ref"]);
    loss_result r = clipped_pg_loss(pg_config_of(cs["config"]), in, count_totals(in.mask));
    EXPECT_TRUE(close(r.loss.item<double>(), cs["loss"].get<double>(), golden_tol)) << name;
    r.loss.backward();
    EXPECT_LT(max_rel_diff(in.lp.grad(), golden().get(p + "grad_lp")), golden_tol) << name;
    expect_metrics(r.metrics, cs["metrics"], name, golden_tol);
  }
}

TEST(dpo_loss, matches_the_independent_pytorch_reference) {
  for (const auto& cs : golden().cases["dpo"]) {
    const std::string p = cs["prefix"], name = cs["name"];
    const auto& g = golden();
    dpo_inputs in{g.get(p + "lp_chosen").requires_grad_(true), g.get(p + "lp_ref_chosen"), g.get(p + "mask_chosen"),
                  g.get(p + "lp_rejected").requires_grad_(true), g.get(p + "lp_ref_rejected"),
                  g.get(p + "mask_rejected")};
    loss_result r = dpo_loss(dpo_config_of(cs["config"]), in, static_cast<double>(in.lp_chosen.size(0)));
    EXPECT_TRUE(close(r.loss.item<double>(), cs["loss"].get<double>(), golden_tol)) << name;
    r.loss.backward();
    EXPECT_LT(max_rel_diff(in.lp_chosen.grad(), g.get(p + "grad_chosen")), golden_tol) << name;
    EXPECT_LT(max_rel_diff(in.lp_rejected.grad(), g.get(p + "grad_rejected")), golden_tol) << name;
    expect_metrics(r.metrics, cs["metrics"], name, golden_tol);
  }
}

distillation_inputs distill_inputs_of(const std::string& p) {
  const auto& g = golden();
  return {g.get(p + "student_logits").requires_grad_(true), g.get(p + "teacher_topk_logits"),
          g.get(p + "teacher_topk_indices"), g.get(p + "mask")};
}

TEST(distillation_loss, matches_the_independent_pytorch_reference) {
  for (const auto& cs : golden().cases["distill"]) {
    const std::string p = cs["prefix"], name = cs["name"];
    distillation_inputs in = distill_inputs_of(p);
    loss_result r = distillation_loss(distill_config_of(cs["config"]), in, count_totals(in.mask).tokens);
    EXPECT_TRUE(close(r.loss.item<double>(), cs["loss"].get<double>(), golden_tol)) << name;
    r.loss.backward();
    EXPECT_LT(max_rel_diff(in.student_logits.grad(), golden().get(p + "grad_logits")), golden_tol) << name;
    expect_metrics(r.metrics, cs["metrics"], name, golden_tol);
  }
}

TEST(nll_loss, matches_the_independent_pytorch_reference) {
  const auto& cs = golden().cases["nll"][0];
  torch::Tensor lp = golden().get("nll0.lp").requires_grad_(true), mask = golden().get("nll0.mask");
  loss_result r = nll_loss(lp, mask, count_totals(mask).tokens);
  EXPECT_TRUE(close(r.loss.item<double>(), cs["loss"].get<double>(), golden_tol));
  r.loss.backward();
  EXPECT_LT(max_rel_diff(lp.grad(), golden().get("nll0.grad_lp")), golden_tol);
  expect_metrics(r.metrics, cs["metrics"], "nll", golden_tol);
}

TEST(masked_entropy, matches_the_independent_pytorch_reference_in_any_chunking) {
  const auto& cs = golden().cases["entropy"][0];
  torch::Tensor mask = golden().get("entropy0.mask");
  for (std::int64_t chunk : {std::int64_t{1}, std::int64_t{4 * 6 * 8}, std::int64_t{256} << 20}) {
    torch::Tensor logits = golden().get("entropy0.logits").requires_grad_(true);
    entropy_sum e = masked_entropy(logits, mask, chunk);  // 1 byte: one row per chunk
    EXPECT_TRUE(close(e.sum.item<double>(), cs["sum"].get<double>(), golden_tol)) << chunk;
    EXPECT_EQ(e.tokens, cs["tokens"].get<double>());
    e.sum.backward();
    EXPECT_LT(max_rel_diff(logits.grad(), golden().get("entropy0.grad_logits")), golden_tol) << chunk;
  }
}

// ---- the microbatch contract ---------------------------------------------------------------------------

// Row ranges of a 4-row batch: [0, 1), [1, 3), [3, 4).
const std::vector<std::pair<std::int64_t, std::int64_t>> splits = {{0, 1}, {1, 3}, {3, 4}};

torch::Tensor rows(const torch::Tensor& t, std::int64_t a, std::int64_t b) {
  return t.defined() ? t.index({Slice(a, b)}) : t;
}

TEST(grpo_loss, microbatches_with_the_global_normalizer_add_up_to_one_call) {
  for (const auto& cs : golden().cases["pg"]) {
    const std::string p = cs["prefix"], name = cs["name"];
    const clipped_pg_config cfg = pg_config_of(cs["config"]);
    pg_inputs whole = pg_inputs_of(p, cs["with_ref"]);
    const batch_totals global = count_totals(whole.mask);
    loss_result one = clipped_pg_loss(cfg, whole, global);
    one.loss.backward();

    torch::Tensor lp = golden().get(p + "lp").requires_grad_(true);
    torch::Tensor sum = torch::zeros({}, torch::kDouble);
    loss_metrics merged;
    batch_totals counted;
    for (auto [a, b] : splits) {
      pg_inputs mb{rows(lp, a, b), rows(whole.lp_old, a, b), rows(whole.lp_gen, a, b), rows(whole.lp_ref, a, b),
                   rows(whole.advantages, a, b), rows(whole.mask, a, b)};
      counted += count_totals(mb.mask);
      loss_result r = clipped_pg_loss(cfg, mb, global);
      r.loss.backward();  // gradients accumulate in lp.grad() across microbatches
      sum = sum + r.loss.detach();
      merged.add(r.metrics);
    }
    EXPECT_EQ(counted.tokens, global.tokens);
    EXPECT_EQ(counted.sequences, global.sequences);
    EXPECT_TRUE(close(sum.item<double>(), one.loss.item<double>(), additive_tol)) << name;
    EXPECT_LT(max_rel_diff(lp.grad(), whole.lp.grad()), additive_tol) << name;
    auto want = one.metrics.finalize(), got = merged.finalize();
    EXPECT_EQ(want.size(), got.size()) << name;
    for (const auto& [k, v] : want) EXPECT_TRUE(close(got[k], v, additive_tol)) << name << " " << k;
  }
}

TEST(dpo_loss, microbatches_with_the_global_normalizer_add_up_to_one_call) {
  const auto& cs = golden().cases["dpo"][0];
  const std::string p = cs["prefix"];
  const auto& g = golden();
  const dpo_config cfg = dpo_config_of(cs["config"]);
  torch::Tensor c = g.get(p + "lp_chosen"), r = g.get(p + "lp_rejected");
  torch::Tensor c1 = c.clone().requires_grad_(true), r1 = r.clone().requires_grad_(true);
  dpo_inputs whole{c1, g.get(p + "lp_ref_chosen"), g.get(p + "mask_chosen"), r1, g.get(p + "lp_ref_rejected"),
                   g.get(p + "mask_rejected")};
  loss_result one = dpo_loss(cfg, whole, 4);
  one.loss.backward();
  torch::Tensor c2 = c.clone().requires_grad_(true), r2 = r.clone().requires_grad_(true);
  double sum = 0;
  for (auto [a, b] : splits) {
    dpo_inputs mb{rows(c2, a, b), rows(whole.lp_ref_chosen, a, b), rows(whole.mask_chosen, a, b),
                  rows(r2, a, b), rows(whole.lp_ref_rejected, a, b), rows(whole.mask_rejected, a, b)};
    loss_result lr = dpo_loss(cfg, mb, 4);
    lr.loss.backward();
    sum += lr.loss.item<double>();
  }
  EXPECT_TRUE(close(sum, one.loss.item<double>(), additive_tol));
  EXPECT_LT(max_rel_diff(c2.grad(), c1.grad()), additive_tol);
  EXPECT_LT(max_rel_diff(r2.grad(), r1.grad()), additive_tol);
}

TEST(distillation_loss, microbatches_with_the_global_normalizer_add_up_to_one_call) {
  const auto& cs = golden().cases["distill"][2];
  const std::string p = cs["prefix"];
  const distillation_config cfg = distill_config_of(cs["config"]);
  distillation_inputs whole = distill_inputs_of(p);
  const double global = count_totals(whole.mask).tokens;
  loss_result one = distillation_loss(cfg, whole, global);
  one.loss.backward();
  torch::Tensor logits = golden().get(p + "student_logits").requires_grad_(true);
  double sum = 0;
  for (auto [a, b] : std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 1}, {1, 3}}) {
    distillation_inputs mb{rows(logits, a, b), rows(whole.teacher_topk_logits, a, b),
                           rows(whole.teacher_topk_indices, a, b), rows(whole.mask, a, b)};
    loss_result r = distillation_loss(cfg, mb, global);
    r.loss.backward();
    sum += r.loss.item<double>();
  }
  EXPECT_TRUE(close(sum, one.loss.item<double>(), additive_tol));
  EXPECT_LT(max_rel_diff(logits.grad(), whole.student_logits.grad()), additive_tol);
}

TEST(nll_loss, microbatches_with_the_global_normalizer_add_up_to_one_call) {
  torch::Tensor lp = golden().get("nll0.lp"), mask = golden().get("nll0.mask");
  const double global = count_totals(mask).tokens;
  const double one = nll_loss(lp, mask, global).loss.item<double>();
  const double sum = nll_loss(rows(lp, 0, 1), rows(mask, 0, 1), global).loss.item<double>() +
                     nll_loss(rows(lp, 1, 3), rows(mask, 1, 3), global).loss.item<double>();
  EXPECT_TRUE(close(sum, one, additive_tol));
}

TEST(grpo_loss, rejects_a_per_microbatch_normalizer) {
  pg_inputs in = three_ratios(1.0);
  EXPECT_THROW(clipped_pg_loss(no_kl(), in, {2, 1}), input_error);  // 3 tokens here, 2 "global"
  // A global batch without a valid token: the loss is 0, not NaN.
  in.mask = torch::zeros({1, 3}, torch::kDouble);
  loss_result r = clipped_pg_loss(no_kl(), in, {0, 0});
  EXPECT_EQ(r.loss.item<double>(), 0.0);
}

// ---- finite-difference gradient checks ---------------------------------------------------------------------

// Central differences of f at x, element by element, against autograd.
void expect_gradient_matches_finite_differences(const std::function<torch::Tensor(const torch::Tensor&)>& f,
                                                torch::Tensor x, const std::string& what) {
  x = x.detach().clone().requires_grad_(true);
  torch::Tensor auto_grad = torch::autograd::grad({f(x)}, {x})[0];
  torch::Tensor numeric = torch::zeros_like(x);
  const double h = 1e-6;
  torch::NoGradGuard no_grad;
  torch::Tensor flat = x.detach().view({-1});
  for (std::int64_t i = 0; i < flat.numel(); ++i) {
    torch::Tensor xp = flat.clone(), xm = flat.clone();
    xp[i] += h;
    xm[i] -= h;
    double d = (f(xp.view(x.sizes())).item<double>() - f(xm.view(x.sizes())).item<double>()) / (2 * h);
    numeric.view({-1})[i] = d;
  }
  EXPECT_LT(max_rel_diff(auto_grad, numeric), 1e-7) << what << "\nautograd " << auto_grad << "\nnumeric " << numeric;
}

TEST(grpo_loss, gradient_matches_finite_differences) {
  for (const auto& cs : golden().cases["pg"]) {
    const std::string p = cs["prefix"];
    clipped_pg_config cfg = pg_config_of(cs["config"]);
    // The on-policy KL weight exp(lp - lp_gen) depends on lp but is held constant in
    // the gradient (NeMo detaches it too), so the gradient is not the derivative of the
    // loss value there: check the rest of the case without it.
    cfg.use_on_policy_kl_approximation = false;
    pg_inputs in = pg_inputs_of(p, cs["with_ref"]);
    const batch_totals global = count_totals(in.mask);
    auto f = [&](const torch::Tensor& lp) {
      pg_inputs x = in;
      x.lp = lp;
      return clipped_pg_loss(cfg, x, global).loss;
    };
    expect_gradient_matches_finite_differences(f, in.lp, cs["name"]);
  }
}

TEST(dpo_loss, gradient_matches_finite_differences) {
  for (const auto& cs : golden().cases["dpo"]) {
    const std::string p = cs["prefix"];
    const auto& g = golden();
    const dpo_config cfg = dpo_config_of(cs["config"]);
    dpo_inputs in{g.get(p + "lp_chosen"), g.get(p + "lp_ref_chosen"), g.get(p + "mask_chosen"),
                  g.get(p + "lp_rejected"), g.get(p + "lp_ref_rejected"), g.get(p + "mask_rejected")};
    expect_gradient_matches_finite_differences(
        [&](const torch::Tensor& c) {
          dpo_inputs x = in;
          x.lp_chosen = c;
          return dpo_loss(cfg, x, 4).loss;
        },
        in.lp_chosen, cs["name"].get<std::string>() + " chosen");
    expect_gradient_matches_finite_differences(
        [&](const torch::Tensor& r) {
          dpo_inputs x = in;
          x.lp_rejected = r;
          return dpo_loss(cfg, x, 4).loss;
        },
        in.lp_rejected, cs["name"].get<std::string>() + " rejected");
  }
}

TEST(distillation_loss, gradient_matches_finite_differences) {
  for (const auto& cs : golden().cases["distill"]) {
    distillation_inputs in = distill_inputs_of(cs["prefix"]);
    const distillation_config cfg = distill_config_of(cs["config"]);
    expect_gradient_matches_finite_differences(
        [&](const torch::Tensor& logits) {
          distillation_inputs x = in;
          x.student_logits = logits;
          return distillation_loss(cfg, x, 9).loss;
        },
        in.student_logits, cs["name"]);
  }
}

TEST(masked_entropy, gradient_matches_finite_differences) {
  torch::Tensor mask = golden().get("entropy0.mask");
  expect_gradient_matches_finite_differences(
      [&](const torch::Tensor& logits) { return masked_entropy(logits, mask, 1).sum; },
      golden().get("entropy0.logits"), "entropy");
}

TEST(nll_loss, gradient_matches_finite_differences) {
  torch::Tensor mask = golden().get("nll0.mask");
  expect_gradient_matches_finite_differences([&](const torch::Tensor& lp) { return nll_loss(lp, mask, 9).loss; },
                                             golden().get("nll0.lp"), "nll");
}

// ---- hand-worked: DPO, distillation, SFT, entropy ---------------------------------------------------------------

TEST(dpo_loss, sigmoid_and_ipo_match_hand_computation) {
  // One pair: chosen lp - ref = (0.25, 0.75) -> r_c = 1; rejected (0.5, -0.5) -> r_r = 0.
  // beta 1: L = -log sigmoid(1) = log(1 + e^-1) = 0.31326168751822286.
  dpo_inputs in{f64_2d({{0.25, 0.75}}).requires_grad_(true), torch::zeros({1, 2}, torch::kDouble),
                torch::ones({1, 2}, torch::kDouble), f64_2d({{0.5, -0.5}}).requires_grad_(true),
                torch::zeros({1, 2}, torch::kDouble), torch::ones({1, 2}, torch::kDouble)};
  dpo_config c;
  c.reference_policy_kl_penalty = 1.0;
  loss_result r = dpo_loss(c, in, 1);
  EXPECT_NEAR(r.loss.item<double>(), 0.31326168751822286, 1e-15);
  EXPECT_EQ(r.metrics.value("accuracy"), 1.0);
  EXPECT_NEAR(r.metrics.value("reward_margin"), 1.0, 1e-15);
  EXPECT_NEAR(r.metrics.value("rewards_chosen_mean"), 1.0, 1e-15);
  // dL/dlp_chosen_t = -beta sigmoid(-beta delta) = -1 / (1 + e) = -0.2689414213699951.
  r.loss.backward();
  EXPECT_NEAR(in.lp_chosen.grad()[0][0].item<double>(), -0.2689414213699951, 1e-15);
  // IPO, beta 0.5: (delta - 1 / (2 beta))^2 = (1 - 1)^2 = 0; averaged r: r_c = 0.5,
  // r_r = 0 -> (0.5 - 1)^2 = 0.25.
  c.preference_loss = "ipo";
  c.reference_policy_kl_penalty = 0.5;
  EXPECT_NEAR(dpo_loss(c, in, 1).loss.item<double>(), 0.0, 1e-15);
  c.preference_average_log_probs = true;
  EXPECT_NEAR(dpo_loss(c, in, 1).loss.item<double>(), 0.25, 1e-15);
  // SFT term alone: -mean(0.25, 0.75) = -0.5, weight 2 -> -1 on top of the IPO 0.25.
  c.sft_loss_weight = 2;
  EXPECT_NEAR(dpo_loss(c, in, 1).loss.item<double>(), 0.25 - 1.0, 1e-15);
}

TEST(distillation_loss, forward_reverse_and_mixed_match_hand_computation) {
  // k = V = 2. Teacher logits (0, 0): p = (0.5, 0.5). Student logits (0, log 3):
  // q = (0.25, 0.75).
  //   forward = 0.5 log(0.5 / 0.25) + 0.5 log(0.5 / 0.75) = 0.5 log(4/3) = 0.14384103622589045
  //   reverse = 0.25 log(0.25 / 0.5) + 0.75 log(0.75 / 0.5) = 0.1308120359411369
  distillation_inputs in{f64({0.0, std::log(3.0)}).view({1, 1, 2}), torch::zeros({1, 1, 2}, torch::kDouble),
                         torch::tensor({0, 1}, torch::kLong).view({1, 1, 2}), torch::ones({1, 1}, torch::kDouble)};
  distillation_config c;
  c.topk_logits_k = 2;
  c.kl_type = "forward";
  EXPECT_NEAR(distillation_loss(c, in, 1).loss.item<double>(), 0.14384103622589045, 1e-15);
  c.kl_type = "reverse";
  EXPECT_NEAR(distillation_loss(c, in, 1).loss.item<double>(), 0.1308120359411369, 1e-15);
  c.kl_type = "mixed";
  c.mixed_kl_weight = 0.25;
  EXPECT_NEAR(distillation_loss(c, in, 1).loss.item<double>(), 0.25 * 0.14384103622589045 + 0.75 * 0.1308120359411369,
              1e-15);
  // The student is renormalized over the teacher's ids only: extra vocabulary with any
  // logits (here id 2 with logit 5) changes nothing when the teacher's top-k is (0, 1).
  in.student_logits = f64({0.0, std::log(3.0), 5.0}).view({1, 1, 3});
  c.kl_type = "forward";
  EXPECT_NEAR(distillation_loss(c, in, 1).loss.item<double>(), 0.14384103622589045, 1e-15);
}

TEST(nll_loss, is_the_token_mean_of_negative_logprobs) {
  // Valid lps -1, -2, -3 (the 4th is padding): (1 + 2 + 3) / 3 = 2.
  loss_result r = nll_loss(f64_2d({{-1, -2}, {-3, -100}}), f64_2d({{1, 1}, {1, 0}}), 3);
  EXPECT_NEAR(r.loss.item<double>(), 2.0, 1e-15);
  EXPECT_NEAR(r.metrics.value("nll"), 2.0, 1e-15);
}

TEST(masked_entropy, of_uniform_logits_is_log_v) {
  // 2 valid tokens of uniform logits over V = 4: each ln 4.
  entropy_sum e = masked_entropy(torch::zeros({1, 3, 4}, torch::kDouble), f64_2d({{1, 1, 0}}));
  EXPECT_NEAR(e.sum.item<double>(), 2 * std::log(4.0), 1e-15);
  EXPECT_EQ(e.tokens, 2.0);
}

TEST(gather_token_logprobs, is_log_softmax_at_the_token) {
  torch::Tensor logits = torch::randn({2, 3, 5}, torch::kDouble);
  torch::Tensor tokens = torch::randint(0, 5, {2, 3}, torch::kLong);
  torch::Tensor want = torch::log_softmax(logits, 2).gather(2, tokens.unsqueeze(2)).squeeze(2);
  EXPECT_LT(max_rel_diff(gather_token_logprobs(logits, tokens), want), 1e-14);
}

// ---- metrics ----------------------------------------------------------------------------------------------------

TEST(loss_metrics, merges_means_sums_minima_and_maxima) {
  loss_metrics a, b;
  a.add_mean("m", 3, 2);  // values summing to 3 over 2 tokens
  b.add_mean("m", 1, 2);
  a.add_sum("s", 0.5);
  b.add_sum("s", 0.25);
  a.add_min("lo", 2);
  b.add_min("lo", 1);
  b.add_max("hi", 7);
  a.add(b);
  auto v = a.finalize();
  EXPECT_EQ(v["m"], 1.0);  // (3 + 1) / (2 + 2)
  EXPECT_EQ(v["s"], 0.75);
  EXPECT_EQ(v["lo"], 1.0);
  EXPECT_EQ(v["hi"], 7.0);
  loss_metrics c;
  c.add_sum("m", 1);
  EXPECT_THROW(a.add(c), std::logic_error);
}

// ---- non-finite detection ----------------------------------------------------------------------------------------

TEST(all_finite, finds_nan_and_inf_in_a_loss_or_gradients) {
  EXPECT_TRUE(all_finite(f64({1.0, 2.0})));
  EXPECT_FALSE(all_finite(f64({1.0, std::nan("")})));
  EXPECT_FALSE(all_finite(std::vector<torch::Tensor>{f64({1.0}), torch::Tensor(), f64({-INFINITY})}));
  EXPECT_TRUE(all_finite(std::vector<torch::Tensor>{f64({1.0}), torch::Tensor()}));
  torch::Tensor p = f64({1.0, 2.0}).requires_grad_(true);
  (p * p).sum().backward();
  EXPECT_TRUE(all_grads_finite({p}));
  p.mutable_grad()[0] = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(all_grads_finite({p}));
}

// ---- conflicting settings -----------------------------------------------------------------------------------------

std::string rejection_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "was accepted";
  return "";
}

TEST(clipped_pg_config, rejects_conflicting_settings_with_a_sentence_saying_how_to_fix) {
  auto reject = [](const std::function<void(clipped_pg_config&)>& set) {
    clipped_pg_config c;
    set(c);
    return rejection_of([&] { c.validate(); });
  };
  EXPECT_NE(reject([](auto& c) {
              c.sequence_level_importance_ratios = true;
              c.token_level_loss = true;
            }).find("set token_level_loss to false"),
            std::string::npos);
  EXPECT_NE(reject([](auto& c) { c.ratio_clip_c = 1.0; }).find("ratio_clip_c must be > 1"), std::string::npos);
  EXPECT_NE(reject([](auto& c) { c.ratio_clip_c = 0.5; }).find("or 0 to turn dual clipping off"), std::string::npos);
  EXPECT_NE(reject([](auto& c) { c.eps_low = -0.1; }).find("must be >= 0"), std::string::npos);
  EXPECT_NE(reject([](auto& c) { c.eps_high = -0.1; }).find("must be >= 0"), std::string::npos);
  EXPECT_NE(reject([](auto& c) {
              c.use_importance_sampling_correction = true;
              c.truncated_importance_sampling_type = "tis";
              c.truncated_importance_sampling_ratio = 0;
            }).find("TIS cap) must be > 0"),
            std::string::npos);
  EXPECT_NE(reject([](auto& c) {
              c.use_importance_sampling_correction = true;
              c.truncated_importance_sampling_type = "icepop";
              c.truncated_importance_sampling_ratio_min = 2;
              c.truncated_importance_sampling_ratio = 2;
            }).find("the min must be below the max"),
            std::string::npos);
  EXPECT_NE(reject([](auto& c) { c.truncated_importance_sampling_type = "tis"; })
                .find("needs use_importance_sampling_correction: true"),
            std::string::npos);
  EXPECT_NE(reject([](auto& c) { c.reference_policy_kl_type = "k4"; }).find("k1, k2 or k3"), std::string::npos);
  // And the loss itself validates: GSPO with token-level loss never runs.
  clipped_pg_config c;
  c.sequence_level_importance_ratios = true;
  pg_inputs in = three_ratios(1.0);
  EXPECT_THROW(clipped_pg_loss(c, in, {3, 1}), input_error);
  // beta != 0 needs lp_ref.
  EXPECT_NE(rejection_of([&] { clipped_pg_loss(clipped_pg_config{}, in, {3, 1}); }).find("lp_ref is missing"),
            std::string::npos);
}

TEST(dpo_config, rejects_beta_that_is_not_positive) {
  dpo_config c;
  c.reference_policy_kl_penalty = 0;
  EXPECT_NE(rejection_of([&] { c.validate(); }).find("beta) must be > 0"), std::string::npos);
  c.reference_policy_kl_penalty = 0.1;
  c.preference_loss = "hinge";
  EXPECT_NE(rejection_of([&] { c.validate(); }).find("sigmoid or ipo"), std::string::npos);
}

TEST(distillation_config, rejects_k_above_the_vocabulary_and_lambda_outside_0_1) {
  distillation_config c;
  c.topk_logits_k = 10;
  EXPECT_NE(rejection_of([&] { c.validate(8); }).find("set topk_logits_k to at most the vocabulary size"),
            std::string::npos);
  c.validate(10);
  c.mixed_kl_weight = 1.5;
  EXPECT_NE(rejection_of([&] { c.validate(); }).find("must lie in [0, 1]"), std::string::npos);
  c.mixed_kl_weight = -0.1;
  EXPECT_NE(rejection_of([&] { c.validate(); }).find("must lie in [0, 1]"), std::string::npos);
  // The loss rejects teacher tensors whose k exceeds the student's vocabulary.
  distillation_config ok;
  distillation_inputs in{torch::zeros({1, 1, 2}, torch::kDouble), torch::zeros({1, 1, 3}, torch::kDouble),
                         torch::tensor({0, 1, 2}, torch::kLong).view({1, 1, 3}), torch::ones({1, 1}, torch::kDouble)};
  EXPECT_NE(rejection_of([&] { distillation_loss(ok, in, 1); }).find("k must lie in [1, V]"), std::string::npos);
}

}  // namespace
}  // namespace troupe
