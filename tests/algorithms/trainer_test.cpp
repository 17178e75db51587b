// The trainer core: microbatching equals one big batch, current-policy logprobs equal
// score_logprobs, schedules, clipping, NaN handling, the frozen reference, checkpoints
// that resume bit-identically, and config checks.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/config_tree.hpp"
#include "policies/generation.hpp"
#include "algorithms/losses.hpp"
#include "policies/model_config.hpp"
#include "algorithms/trainer.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

constexpr std::int64_t vocab = 61;

causal_lm tiny_model(torch::Dtype dtype, std::uint64_t seed = 1) {
  policy_section p;
  p.hidden_size = 32;
  p.intermediate_size = 64;
  p.num_hidden_layers = 2;
  p.num_attention_heads = 4;
  p.num_key_value_heads = 2;
  p.max_position_embeddings = 64;
  auto c = small_model_config(p, vocab);
  c.initializer_range = 0.2;  // logits far from uniform: gradients with some structure
  causal_lm m(c);
  m->init_weights(seed);
  m->to(dtype);
  return m;
}

// 8 right-padded sequences of different lengths with different prompt lengths, and
// one advantage per sequence. Sequence 6 has no response token.
train_batch make_batch(std::uint64_t seed = 7) {
  const std::vector<std::int64_t> len = {5, 16, 9, 12, 7, 16, 3, 11};
  const std::vector<std::int64_t> prompt = {2, 4, 3, 5, 2, 6, 3, 1};
  const std::int64_t B = 8, T = 16;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  train_batch b;
  b.input_ids = torch::randint(0, vocab, {B, T}, gen, torch::TensorOptions(torch::kInt64));
  b.attention_mask = torch::zeros({B, T}, torch::kInt64);
  b.response_mask = torch::zeros({B, T}, torch::kFloat32);
  for (std::int64_t i = 0; i < B; ++i) {
    const auto L = len[static_cast<std::size_t>(i)], P = prompt[static_cast<std::size_t>(i)];
    b.attention_mask[i].narrow(0, 0, L).fill_(1);
    b.response_mask[i].narrow(0, P, L - P).fill_(1);
    b.input_ids[i].narrow(0, L, T - L).fill_(0);  // padding
  }
  b.per_sequence["advantages"] = at::normal(0.0, 1.0, {B}, gen, torch::TensorOptions(torch::kFloat64));
  return b;
}

// A token-level policy-gradient loss that follows the contract: masked -A * lp summed
// and divided by the GLOBAL token count.
loss_result pg_loss(causal_lm& m, const train_batch& mb, const batch_totals& n) {
  auto lp = token_logprobs(m, mb);  // (b, T)
  auto mask = mb.response_mask.to(lp.dtype());
  auto adv = mb.extra("advantages").to(lp.dtype()).unsqueeze(1);  // (b, 1)
  loss_result out;
  out.loss = -(adv * lp * mask).sum() / n.tokens;
  out.metrics.add_mean("mean_logprob", (lp * mask).sum().item<double>(), mask.sum().item<double>());
  return out;
}

// The GRPO loss as the trainer actor runs it: clipped_pg_loss over the microbatch's
// old and reference logprobs (fp64 masks).
loss_fn clipped_pg_with_kl(const clipped_pg_config& pg) {
  return [pg](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    pg_inputs in;
    in.lp = token_logprobs(policy, mb);
    in.lp_old = mb.extra("old_logprobs");
    in.lp_ref = mb.extra("ref_logprobs");
    in.advantages = mb.extra("advantages");
    in.mask = mb.response_mask.to(torch::kFloat64);
    return clipped_pg_loss(pg, in, global);
  };
}

std::map<std::string, torch::Tensor> grads_of(causal_lm& m) {
  std::map<std::string, torch::Tensor> g;
  for (auto& p : m->named_parameters()) g[p.key()] = p.value().grad().clone();
  return g;
}

std::map<std::string, torch::Tensor> weights_of(causal_lm& m) {
  std::map<std::string, torch::Tensor> w;
  for (auto& p : m->named_parameters()) w[p.key()] = p.value().detach().clone();
  return w;
}

double max_abs_diff(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  double worst = 0;
  for (const auto& [k, v] : a) worst = std::max(worst, (v - b.at(k)).abs().max().item<double>());
  return worst;
}

bool bit_identical(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b) {
  for (const auto& [k, v] : a)
    if (!torch::equal(v, b.at(k))) return false;
  return true;
}

trainer_section section(std::int64_t microbatch_size) {
  trainer_section s;
  s.lr = 1e-2;
  s.microbatch_size = microbatch_size;
  s.max_grad_norm = 0;
  return s;
}

TEST(trainer, microbatched_gradients_equal_full_batch_gradients_in_fp64) {
  auto batch = make_batch();
  std::map<std::string, torch::Tensor> full_grads, full_weights;
  train_step_result full;
  for (std::int64_t m : {8, 3, 1}) {
    trainer t(tiny_model(torch::kFloat64), section(m), /*with_reference=*/false);
    auto r = t.train_step(batch, pg_loss);
    EXPECT_EQ(r.metrics.at("train/microbatches"), static_cast<double>((8 + m - 1) / m));
    if (m == 8) {
      full_grads = grads_of(t.policy());
      full_weights = weights_of(t.policy());
      full = r;
      EXPECT_GT(full.metrics.at("train/grad_norm"), 1e-3);  // not a vacuous comparison
      continue;
    }
    EXPECT_LT(max_abs_diff(grads_of(t.policy()), full_grads), 1e-6) << "microbatch_size " << m;
    EXPECT_LT(max_abs_diff(weights_of(t.policy()), full_weights), 1e-6) << "microbatch_size " << m;
    EXPECT_NEAR(r.metrics.at("train/loss"), full.metrics.at("train/loss"), 1e-12);
    EXPECT_NEAR(r.metrics.at("train/mean_logprob"), full.metrics.at("train/mean_logprob"), 1e-12);
    EXPECT_NEAR(r.metrics.at("train/grad_norm"), full.metrics.at("train/grad_norm"), 1e-9);
  }
  EXPECT_EQ(full.metrics.at("train/tokens"), 3 + 12 + 6 + 7 + 5 + 10 + 0 + 10);
  EXPECT_EQ(full.metrics.at("train/sequences"), 7);
}

// Dynamic batching, worked by hand on make_batch's lengths {5, 16, 9, 12, 7, 16, 3, 11}:
// longest first (ties in batch order) rows 1, 5, 3, 7, 2, 4, 0, 6; a budget of 32 tokens
// takes 2 rows of 16, 2 of 12 (24), 3 of 9 (27), then the last row alone.
TEST(trainer, dynamic_batching_sorts_rows_by_length_and_fills_a_token_budget) {
  auto batch = make_batch();
  auto plan = plan_microbatches(batch, 4, 32);
  ASSERT_TRUE(plan.order.defined());
  EXPECT_TRUE(torch::equal(plan.order, torch::tensor({1, 5, 3, 7, 2, 4, 0, 6}, torch::kInt64)));
  ASSERT_EQ(plan.spans.size(), 4u);
  const std::vector<std::array<std::int64_t, 3>> want = {{0, 2, 16}, {2, 4, 12}, {4, 7, 9}, {7, 8, 3}};
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(plan.spans[i].begin, want[i][0]) << i;
    EXPECT_EQ(plan.spans[i].end, want[i][1]) << i;
    EXPECT_EQ(plan.spans[i].length, want[i][2]) << i;
  }
  EXPECT_EQ(plan.computed_tokens(), 32 + 24 + 27 + 3);
  // The rows travel with everything that belongs to them.
  EXPECT_TRUE(torch::equal(plan.ordered.input_ids[2], batch.input_ids[3]));
  EXPECT_TRUE(torch::equal(plan.ordered.extra("advantages")[7], batch.extra("advantages")[6]));

  // In order, 4 rows at a time: each microbatch cut to its longest row (16 and 16).
  auto in_order = plan_microbatches(batch, 4, 0);
  EXPECT_FALSE(in_order.order.defined());
  ASSERT_EQ(in_order.spans.size(), 2u);
  EXPECT_EQ(in_order.computed_tokens(), 128);
  // A row longer than the budget goes alone instead of failing.
  auto tight = plan_microbatches(batch, 4, 10);
  // (16, 16, 12, 11, 9 and 7 one each, then 5 and 3 together.)
  ASSERT_EQ(tight.spans.size(), 7u);
  EXPECT_EQ(tight.spans.front().end - tight.spans.front().begin, 1);
  EXPECT_EQ(tight.spans.back().begin, 6);
  EXPECT_EQ(tight.spans.back().length, 5);
}

// Sorting rows changes which padding is computed, not the update: gradients, loss and
// the scored logprobs (put back in batch order) equal the full batch's.
TEST(trainer, dynamic_batching_gives_the_full_batch_update_and_logprobs_in_batch_order) {
  auto batch = make_batch();
  clipped_pg_config pg;
  pg.reference_policy_kl_penalty = 0.1;
  std::map<std::string, torch::Tensor> full_grads;
  std::map<std::string, double> full_metrics;
  torch::Tensor full_lp;
  for (std::int64_t budget : {0, 32, 20}) {
    auto s = section(8);
    s.microbatch_tokens = budget;
    trainer t(tiny_model(torch::kFloat64), s);
    auto b = batch;
    b.per_token["ref_logprobs"] = t.reference_logprobs(b);
    b.per_token["old_logprobs"] = t.policy_logprobs(b);
    auto r = t.train_step(b, clipped_pg_with_kl(pg));
    if (budget == 0) {
      full_grads = grads_of(t.policy());
      full_metrics = r.metrics;
      full_lp = b.per_token["old_logprobs"];
      EXPECT_EQ(r.metrics.at("train/microbatches"), 1);
      EXPECT_DOUBLE_EQ(r.metrics.at("train/padding_fraction"), 1.0 - 79.0 / 128.0);
      EXPECT_GT(r.metrics.at("train/grad_norm"), 1e-3);  // not a vacuous comparison
      continue;
    }
    EXPECT_GT(r.metrics.at("train/microbatches"), 1) << budget;
    EXPECT_LT(r.metrics.at("train/padding_fraction"), full_metrics.at("train/padding_fraction")) << budget;
    EXPECT_LT((b.per_token["old_logprobs"] - full_lp).abs().max().item<double>(), 1e-12) << budget;
    // lp_old in the wrong rows would make the ratio differ from 1.
    EXPECT_NEAR(r.metrics.at("train/probs_ratio"), 1.0, 1e-12) << budget;
    EXPECT_LT(max_abs_diff(grads_of(t.policy()), full_grads), 1e-6) << budget;
    for (const char* k : {"train/loss", "train/pg_loss", "train/kl_penalty", "train/approx_kl"})
      EXPECT_NEAR(r.metrics.at(k), full_metrics.at(k), 1e-9) << k << " at budget " << budget;
  }
}

// The GRPO update as the trainer actor will run it: lp_old and lp_ref scored before the
// step, clipped_pg_loss (algorithms/losses.hpp) with a KL term, a second step off-policy.
TEST(trainer, clipped_pg_loss_with_kl_is_microbatch_invariant_through_the_trainer) {
  auto batch = make_batch();
  clipped_pg_config pg;
  pg.reference_policy_kl_penalty = 0.1;
  std::map<std::string, torch::Tensor> full_grads;
  std::map<std::string, double> full_metrics;
  for (std::int64_t m : {8, 3}) {
    trainer t(tiny_model(torch::kFloat64), section(m));
    auto b = batch;
    b.per_token["ref_logprobs"] = t.reference_logprobs(b);
    train_step_result r;
    for (int step = 0; step < 2; ++step) {
      b.per_token["old_logprobs"] = t.policy_logprobs(b);
      auto loss = clipped_pg_with_kl(pg);
      // Two updates on one batch: the second sees r != 1 (lp_old from before the first).
      r = t.train_step(b, loss);
      r = t.train_step(b, loss);
    }
    if (m == 8) {
      full_grads = grads_of(t.policy());
      full_metrics = r.metrics;
      EXPECT_GT(r.metrics.at("train/kl_penalty"), 0.0);
      continue;
    }
    EXPECT_LT(max_abs_diff(grads_of(t.policy()), full_grads), 1e-6);
    for (const char* k : {"train/loss", "train/pg_loss", "train/kl_penalty", "train/approx_kl", "train/probs_ratio"})
      EXPECT_NEAR(r.metrics.at(k), full_metrics.at(k), 1e-9) << k;
  }
}

TEST(trainer, current_policy_logprobs_agree_with_score_logprobs_in_fp32) {
  auto model = tiny_model(torch::kFloat32);
  auto batch = make_batch();
  const std::vector<std::int64_t> len = {5, 16, 9, 12, 7, 16, 3, 11};
  for (double temperature : {1.0, 0.7}) {
    auto lp = token_logprobs(model, batch, temperature);  // (B, T)
    EXPECT_EQ(lp.scalar_type(), torch::kFloat32);
    std::vector<score_request> reqs;
    std::vector<std::int64_t> starts;
    for (std::int64_t b = 0; b < 8; ++b) {
      auto nz = batch.response_mask[b].nonzero();
      if (nz.numel() == 0) continue;
      score_request r;
      auto ids = batch.input_ids[b].narrow(0, 0, len[static_cast<std::size_t>(b)]).contiguous();
      r.tokens.assign(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + ids.numel());
      r.response_start = nz[0].item<std::int64_t>();
      reqs.push_back(r);
      starts.push_back(b);
    }
    auto want = score_logprobs(model, reqs, temperature);
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      const auto b = starts[i];
      for (std::size_t j = 0; j < want[i].size(); ++j) {
        const auto t = reqs[i].response_start + static_cast<std::int64_t>(j);
        EXPECT_NEAR(lp[b][t].item<float>(), want[i][j], 1e-6) << "temperature " << temperature << " b " << b << " t " << t;
      }
    }
    // Zeros outside the response.
    EXPECT_EQ(lp.masked_select(batch.response_mask.eq(0)).abs().max().item<float>(), 0.0f);
  }
  auto lp = token_logprobs(model, batch);
  EXPECT_TRUE(lp.requires_grad());
}

// The GRPO diagnostics take the policy's entropy from the forward that scores lp_old;
// it must equal masked_entropy over a separate full forward, as it was computed before.
TEST(trainer, entropy_from_the_scoring_forward_equals_masked_entropy_of_a_full_forward) {
  auto model = tiny_model(torch::kFloat64);
  auto batch = make_batch();
  trainer t(model, section(3), /*with_reference=*/false);
  for (double temperature : {1.0, 0.7}) {
    torch::Tensor entropy;
    auto lp = t.policy_logprobs(batch, temperature, &entropy);
    EXPECT_TRUE(torch::equal(lp, t.policy_logprobs(batch, temperature)));  // unchanged by asking for entropy
    ASSERT_EQ(entropy.sizes(), lp.sizes());
    EXPECT_FALSE(entropy.requires_grad());
    EXPECT_EQ(entropy.masked_select(batch.response_mask.eq(0)).abs().max().item<double>(), 0.0);
    torch::NoGradGuard g;
    const auto T = batch.length();
    auto logits = model->forward(batch.input_ids, batch.attention_mask).narrow(1, 0, T - 1) / temperature;
    auto want = masked_entropy(logits, batch.response_mask.narrow(1, 1, T - 1));
    auto resp = batch.response_mask.to(torch::kFloat64);
    EXPECT_NEAR((entropy * resp).sum().item<double>(), want.sum.item<double>(), 1e-10) << "temperature " << temperature;
    EXPECT_GT(want.sum.item<double>(), 0.0);
    // Per token too: one position's entropy by hand.
    auto nz = batch.response_mask[1].nonzero();
    const auto tpos = nz[0].item<std::int64_t>();
    auto l = torch::log_softmax(logits[1][tpos - 1], 0);
    EXPECT_NEAR(entropy[1][tpos].item<double>(), -(l.exp() * l).sum().item<double>(), 1e-12);
  }
}

TEST(trainer, lr_schedules_give_hand_computed_values) {
  trainer_section s;
  s.lr = 1e-3;
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0), 1e-3);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1000), 1e-3);

  s.lr_schedule = "linear_warmup";
  s.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0), 2.5e-4);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1), 5e-4);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 3), 1e-3);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 50), 1e-3);

  s.lr_schedule = "cosine";
  s.total_steps = 14;
  s.min_lr = 1e-4;
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0), 2.5e-4);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 4), 1e-3);                                  // p = 0
  EXPECT_NEAR(scheduled_lr(s, 9), 5.5e-4, 1e-15);                              // p = 1/2: midway
  EXPECT_NEAR(scheduled_lr(s, 6), 1e-4 + 9e-4 * (1 + std::cos(0.2 * 3.14159265358979323846)) / 2, 1e-15);  // p = 1/5
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 14), 1e-4);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 100), 1e-4);

  // The trainer reports the lr of each step.
  trainer_section t = section(8);
  t.lr = 1e-3;
  t.lr_schedule = "linear_warmup";
  t.warmup_steps = 2;
  trainer tr(tiny_model(torch::kFloat32), t, false);
  auto batch = make_batch();
  EXPECT_DOUBLE_EQ(tr.train_step(batch, pg_loss).metrics.at("train/lr"), 5e-4);
  EXPECT_DOUBLE_EQ(tr.train_step(batch, pg_loss).metrics.at("train/lr"), 1e-3);
}

TEST(trainer, clipping_scales_gradients_to_max_norm_and_reports_the_pre_clip_norm) {
  auto batch = make_batch();
  trainer unclipped_run(tiny_model(torch::kFloat64), section(3), false);
  const double norm = unclipped_run.train_step(batch, pg_loss).metrics.at("train/grad_norm");
  auto unclipped = grads_of(unclipped_run.policy());

  auto s = section(3);
  s.max_grad_norm = norm / 10;
  trainer clipped(tiny_model(torch::kFloat64), s, false);
  auto r = clipped.train_step(batch, pg_loss);
  EXPECT_NEAR(r.metrics.at("train/grad_norm"), norm, 1e-12);  // before clipping
  auto g = grads_of(clipped.policy());
  double sq = 0;
  for (const auto& [k, v] : g) sq += v.pow(2).sum().item<double>();
  EXPECT_NEAR(std::sqrt(sq), norm / 10, 1e-6 * norm);
  for (const auto& [k, v] : g) EXPECT_TRUE(torch::allclose(v * 10, unclipped.at(k), 1e-5, 1e-12)) << k;

  // Below the threshold, nothing changes.
  s.max_grad_norm = norm * 2;
  trainer loose(tiny_model(torch::kFloat64), s, false);
  loose.train_step(batch, pg_loss);
  EXPECT_EQ(max_abs_diff(grads_of(loose.policy()), unclipped), 0.0);
}

TEST(trainer, checkpoint_resumes_bit_identically_in_fp32) {
  testing::temp_dir dir;
  auto batch = make_batch();
  auto s = section(3);
  s.lr = 1e-3;
  s.max_grad_norm = 0.5;
  s.lr_schedule = "cosine";
  s.total_steps = 6;
  s.warmup_steps = 1;
  const auto ckpt = dir / "step-3";

  torch::manual_seed(123);
  trainer a(tiny_model(torch::kFloat32), s);
  for (int i = 0; i < 3; ++i) a.train_step(batch, pg_loss);
  a.save_checkpoint(ckpt);
  auto a_after_save = weights_of(a.policy());
  for (int i = 0; i < 2; ++i) a.train_step(batch, pg_loss);
  auto a_draw = torch::rand({4});
  auto a_own = torch::rand({4}, a.generator());

  torch::manual_seed(999);  // the checkpoint restores the generator
  trainer b(tiny_model(torch::kFloat32), s);
  b.load_checkpoint(ckpt);
  EXPECT_EQ(b.step(), 3);
  EXPECT_TRUE(bit_identical(weights_of(b.policy()), a_after_save));
  for (int i = 0; i < 2; ++i) b.train_step(batch, pg_loss);
  auto b_draw = torch::rand({4});
  auto b_own = torch::rand({4}, b.generator());

  EXPECT_TRUE(bit_identical(weights_of(b.policy()), weights_of(a.policy())));
  EXPECT_FALSE(bit_identical(weights_of(b.policy()), a_after_save));  // it did train
  EXPECT_TRUE(torch::equal(a_draw, b_draw));
  EXPECT_TRUE(torch::equal(a_own, b_own));
  // The reference stays the initial policy, not the checkpoint's.
  auto init = tiny_model(torch::kFloat32);
  EXPECT_TRUE(bit_identical(weights_of(*b.reference()), weights_of(init)));
}

TEST(trainer, checkpoint_directory_appears_atomically_and_replaces_an_old_one) {
  testing::temp_dir dir;
  auto batch = make_batch();
  trainer t(tiny_model(torch::kFloat32), section(4), false);
  t.train_step(batch, pg_loss);
  const auto ckpt = dir / "latest";
  t.save_checkpoint(ckpt);
  for (const char* f : {"config.json", "model.safetensors", "trainer_state.pt"})
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(ckpt) / f)) << f;
  t.train_step(batch, pg_loss);
  t.save_checkpoint(ckpt);  // replaces
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"latest"});  // no .tmp-* or .old-* left

  trainer u(tiny_model(torch::kFloat32), section(4), false);
  u.load_checkpoint(ckpt);
  EXPECT_EQ(u.step(), 2);
  EXPECT_TRUE(bit_identical(weights_of(u.policy()), weights_of(t.policy())));

  EXPECT_THROW(u.load_checkpoint(dir / "missing"), input_error);
  trainer f64(tiny_model(torch::kFloat64), section(4), false);
  EXPECT_THROW(f64.save_checkpoint(dir / "f64"), input_error);  // HF files hold no float64
  EXPECT_FALSE(std::filesystem::exists(dir / "f64"));
  // A checkpoint that cannot be written leaves nothing behind and says where.
  dir.write("file", "x");
  try {
    t.save_checkpoint(dir / "file/under-a-file");
    FAIL() << "no error";
  } catch (const system_error& e) {
    EXPECT_NE(std::string(e.what()).find("under-a-file"), std::string::npos) << e.what();
  }
}

TEST(trainer, a_nonfinite_loss_skips_the_step_counts_it_and_keeps_the_weights) {
  auto batch = make_batch();
  auto s = section(3);
  s.max_consecutive_nonfinite = 2;
  trainer t(tiny_model(torch::kFloat32), s, false);
  int calls = 0;
  bool poison = false;
  auto loss = [&](causal_lm& m, const train_batch& mb, const batch_totals& n) {
    auto out = pg_loss(m, mb, n);
    if (poison && ++calls == 2) out.loss = out.loss * std::numeric_limits<double>::quiet_NaN();  // second microbatch
    return out;
  };
  t.train_step(batch, loss);
  auto before = weights_of(t.policy());
  poison = true;
  auto r = t.train_step(batch, loss);
  EXPECT_TRUE(r.skipped);
  EXPECT_EQ(r.metrics.at("train/skipped"), 1.0);
  EXPECT_EQ(r.metrics.at("train/skipped_steps"), 1.0);
  EXPECT_EQ(r.metrics.count("train/loss"), 0u);
  EXPECT_EQ(t.skipped_steps(), 1);
  EXPECT_EQ(t.step(), 2);
  EXPECT_TRUE(bit_identical(weights_of(t.policy()), before));

  poison = false;  // a finite step resets the run of skipped ones
  EXPECT_FALSE(t.train_step(batch, loss).skipped);
  poison = true;
  calls = 0;
  EXPECT_TRUE(t.train_step(batch, loss).skipped);
  calls = 0;
  auto last = weights_of(t.policy());
  try {
    t.train_step(batch, loss);
    FAIL() << "no error after 2 non-finite steps in a row";
  } catch (const training_diverged& e) {
    EXPECT_NE(std::string(e.what()).find("2 consecutive steps"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_consecutive_nonfinite"), std::string::npos) << e.what();
  }
  EXPECT_EQ(t.skipped_steps(), 3);
  EXPECT_TRUE(bit_identical(weights_of(t.policy()), last));
}

TEST(trainer, an_infinite_gradient_under_a_finite_loss_skips_the_step) {
  auto batch = make_batch();
  trainer t(tiny_model(torch::kFloat32), section(8), false);
  auto before = weights_of(t.policy());
  auto r = t.train_step(batch, [](causal_lm& m, const train_batch& mb, const batch_totals& n) {
    auto out = pg_loss(m, mb, n);
    auto w = m->model->norm->weight;
    out.loss = out.loss + torch::sqrt(w - w.detach()).sum();  // value 0, gradient inf
    return out;
  });
  EXPECT_TRUE(r.skipped);
  EXPECT_EQ(r.metrics.count("train/grad_norm"), 0u);
  EXPECT_TRUE(bit_identical(weights_of(t.policy()), before));
}

TEST(trainer, the_reference_model_stays_frozen_while_the_policy_trains) {
  auto batch = make_batch();
  auto s = section(3);
  trainer t(tiny_model(torch::kFloat32), s);
  ASSERT_NE(t.reference(), nullptr);
  auto initial = weights_of(*t.reference());
  auto ref_lp0 = t.reference_logprobs(batch);
  EXPECT_TRUE(torch::equal(ref_lp0, t.policy_logprobs(batch)));  // a copy of the policy at start
  for (int i = 0; i < 3; ++i)
    t.train_step(batch, [&](causal_lm& m, const train_batch& mb, const batch_totals& n) {
      auto out = pg_loss(m, mb, n);
      // A KL-style term that reads the reference: it must not pull grads into it.
      auto ref_lp = token_logprobs(*t.reference(), mb);
      out.loss = out.loss + ((token_logprobs(m, mb) - ref_lp).pow(2) * mb.response_mask).sum() / n.tokens;
      return out;
    });
  EXPECT_TRUE(bit_identical(weights_of(*t.reference()), initial));
  EXPECT_FALSE(bit_identical(weights_of(t.policy()), initial));
  for (auto& p : (*t.reference())->parameters()) {
    EXPECT_FALSE(p.requires_grad());
    EXPECT_FALSE(p.grad().defined());
  }
  EXPECT_FALSE((*t.reference())->is_training());
  EXPECT_TRUE(torch::equal(t.reference_logprobs(batch), ref_lp0));
  EXPECT_FALSE(torch::equal(t.policy_logprobs(batch), ref_lp0));
}

TEST(trainer, teacher_topk_gives_the_teachers_best_k_logprobs_per_response_token) {
  auto teacher = tiny_model(torch::kFloat64, 5);
  auto batch = make_batch();
  auto top = teacher_topk(teacher, batch, 4, /*microbatch_size=*/3);
  ASSERT_EQ(top.values.sizes(), (std::vector<std::int64_t>{8, 16, 4}));
  torch::NoGradGuard g;
  auto lp = torch::log_softmax(teacher->forward(batch.input_ids, batch.attention_mask), -1);  // (B, T, V)
  // Sequence 1, token 10 is predicted at position 9.
  auto want = lp[1][9].topk(4);
  EXPECT_TRUE(torch::allclose(top.values[1][10], std::get<0>(want), 0, 1e-12));
  EXPECT_TRUE(torch::equal(top.indices[1][10], std::get<1>(want)));
  EXPECT_EQ(top.values[0][1].abs().sum().item<double>(), 0.0);  // a prompt token: zeros
  EXPECT_TRUE((top.values[1][10].slice(0, 0, 3) >= top.values[1][10].slice(0, 1, 4)).all().item<bool>());
}

TEST(trainer, malformed_batches_are_rejected_with_the_reason) {
  trainer t(tiny_model(torch::kFloat32), section(4), false);
  auto expect_error = [&](const train_batch& b, const std::string& needle) {
    try {
      t.train_step(b, pg_loss);
      FAIL() << "accepted; expected: " << needle;
    } catch (const input_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto b = make_batch();
  b.attention_mask[0][0] = 0;
  expect_error(b, "right-padded");
  b = make_batch();
  b.response_mask[2][0] = 1;
  expect_error(b, "position 0");
  b = make_batch();
  b.response_mask[0][15] = 1;
  expect_error(b, "padding");
  b = make_batch();
  b.per_token["old_logprobs"] = torch::zeros({8, 15});
  expect_error(b, "old_logprobs");
  b = make_batch();
  b.response_mask.zero_();
  expect_error(b, "no response tokens");
  b = make_batch();
  b.per_sequence.clear();
  expect_error(b, "no tensor named 'advantages'");
}

TEST(trainer_section, bad_values_and_conflicts_are_rejected_with_a_fix) {
  auto read = [](const std::string& yaml) {
    auto s = read_config<trainer_section>(parse_config_text(yaml, "test.yaml"));
    s.validate();
    return s;
  };
  auto expect_error = [&](const std::string& yaml, const std::string& needle) {
    try {
      read(yaml);
      FAIL() << "accepted: " << yaml;
    } catch (const input_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto ok = read("lr: 3.0e-4\nlr_schedule: cosine\nwarmup_steps: 10\ntotal_steps: 100\nmin_lr: 1.0e-5\n");
  EXPECT_EQ(ok.total_steps, 100);
  expect_error("lr_schedule: linear\n", "lr_schedule");
  expect_error("microbatch_size: 0\n", "microbatch_size");
  expect_error("betas: [0.9]\n", "expected two values");
  expect_error("betas: [0.9, 1.0]\n", "[0, 1)");
  expect_error("lr_schdule: cosine\n", "did you mean 'lr_schedule'");
  expect_error("lr_schedule: cosine\nwarmup_steps: 20\ntotal_steps: 10\n",
               "trainer.warmup_steps (20) is not below trainer.total_steps (10), so the cosine schedule would never "
               "decay: lower warmup_steps or raise total_steps");
  expect_error("lr_schedule: cosine\n", "set it to the number of optimizer steps");
  expect_error("lr_schedule: cosine\ntotal_steps: 10\nlr: 1.0e-5\nmin_lr: 1.0e-4\n", "set min_lr <= lr");
  expect_error("warmup_steps: 5\n", "set lr_schedule to linear_warmup or cosine");
  expect_error("lr_schedule: linear_warmup\nwarmup_steps: 5\ntotal_steps: 3\n", "lower warmup_steps");
  EXPECT_NE(write_config(trainer_section{}).find("max_consecutive_nonfinite: 3"), std::string::npos);
}

}  // namespace
}  // namespace troupe
