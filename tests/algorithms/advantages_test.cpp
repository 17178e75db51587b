// Advantage estimators: hand-worked groups, the zero-variance and group-size-1 rules,
// goldens from the independent Python reference, and DAPO's dynamic sampling.
#include "algorithms/advantages.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "policies/safetensors.hpp"

namespace troupe {
namespace {

torch::Tensor groups(std::vector<std::vector<double>> rows) {
  std::vector<torch::Tensor> ts;
  for (auto& r : rows) ts.push_back(torch::tensor(r, torch::kDouble));
  return torch::stack(ts);
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST(leave_one_out_advantages, match_hand_computation) {
  // Rewards (1, 0, 0, 0).
  //   i = 0: others (0, 0, 0): baseline 0, std 0 -> not normalized: A = 1 - 0 = 1.
  //   i = 1..3: others (1, 0, 0): baseline 1/3; population std (NeMo RL's) =
  //     sqrt(((1 - 1/3)^2 + 2 (1/3)^2) / 3) = sqrt((4/9 + 2/9) / 3) = sqrt(2/9) = 0.4714045207910317
  //     A = (0 - 1/3) / (0.4714045207910317 + 1e-6)
  torch::Tensor a = leave_one_out_advantages(groups({{1, 0, 0, 0}}));
  const double other = (-1.0 / 3) / (std::sqrt(2.0 / 9) + 1e-6);
  EXPECT_LT(max_abs_diff(a, groups({{1, other, other, other}})), 1e-15);
  baseline_and_std bs = leave_one_out_baseline_and_std(groups({{1, 0, 0, 0}}));
  EXPECT_NEAR(bs.baseline[0][1].item<double>(), 1.0 / 3, 1e-15);
  EXPECT_NEAR(bs.std[0][1].item<double>(), std::sqrt(2.0 / 9), 1e-15);
  // RLOO (no std): R_i - mean of the others: (1, -1/3, -1/3, -1/3).
  EXPECT_LT(max_abs_diff(leave_one_out_advantages(groups({{1, 0, 0, 0}}), false),
                         groups({{1, -1.0 / 3, -1.0 / 3, -1.0 / 3}})),
            1e-15);
  // Rewards (3, 1, 2): i = 0: others (1, 2) baseline 1.5, population std 0.5 ->
  // A = 1.5 / (0.5 + 1e-6).
  EXPECT_NEAR(leave_one_out_advantages(groups({{3, 1, 2}}))[0][0].item<double>(), 1.5 / (0.5 + 1e-6), 1e-15);
}

TEST(leave_one_out_advantages, treat_a_std_of_rounding_noise_as_zero) {
  // (1.1, 0.1, 0.1, 0.1): the others of the first are three equal 0.1s, whose computed
  // std is rounding noise, not 0. Dividing by it would give ~1e6; the advantage is the
  // unnormalized difference, 1.
  auto a = leave_one_out_advantages(groups({{1.1, 0.1, 0.1, 0.1}}));
  EXPECT_NEAR(a[0][0].item<double>(), 1.0, 1e-12);
  EXPECT_LT(a.abs().max().item<double>(), 10.0);
}

TEST(leave_one_out_advantages, are_zero_for_a_group_without_variance_and_for_group_size_one) {
  EXPECT_EQ(leave_one_out_advantages(groups({{0.1, 0.1, 0.1, 0.1}})).abs().max().item<double>(), 0.0);
  EXPECT_EQ(leave_one_out_advantages(groups({{0.7}, {-2.0}})).abs().max().item<double>(), 0.0);
  // Group size 2: the one other reward has no spread, so A = R_i - R_j unnormalized.
  EXPECT_LT(max_abs_diff(leave_one_out_advantages(groups({{1, 0}})), groups({{1, -1}})), 1e-15);
}

TEST(group_normalized_advantages, match_hand_computation) {
  // (1, 0, 0, 0): mean 0.25; unbiased std sqrt((0.75^2 + 3 0.25^2) / 3) = sqrt(0.25) = 0.5;
  // biased sqrt(0.75 / 4) = 0.4330127018922193.
  torch::Tensor r = groups({{1, 0, 0, 0}});
  EXPECT_LT(max_abs_diff(group_normalized_advantages(r), groups({{0.75, -0.25, -0.25, -0.25}}) / (0.5 + 1e-6)), 1e-15);
  EXPECT_LT(max_abs_diff(group_normalized_advantages(r, 1e-4, false),
                         groups({{0.75, -0.25, -0.25, -0.25}}) / (std::sqrt(0.1875) + 1e-4)),
            1e-15);
  EXPECT_EQ(group_normalized_advantages(groups({{2, 2, 2}, {5, 5, 5}})).abs().max().item<double>(), 0.0);
  EXPECT_EQ(group_normalized_advantages(groups({{3}})).abs().max().item<double>(), 0.0);
}

TEST(group_mean_advantages, subtract_the_group_mean_without_std) {
  EXPECT_LT(max_abs_diff(group_mean_advantages(groups({{1, 0, 0, 0}, {2, 4, 6, 8}})),
                         groups({{0.75, -0.25, -0.25, -0.25}, {-3, -1, 1, 3}})),
            1e-15);
  EXPECT_EQ(group_mean_advantages(groups({{4}, {1}})).abs().max().item<double>(), 0.0);
}

TEST(compute_advantages, picks_the_estimator_by_name_and_rejects_unknown_ones) {
  torch::Tensor r = groups({{1, 0, 0, 0}, {0.3, -1.2, 2.0, 0.7}});
  advantage_config c;
  EXPECT_LT(max_abs_diff(compute_advantages(c, r), leave_one_out_advantages(r)), 1e-15);
  c.estimator = "group_mean";
  EXPECT_LT(max_abs_diff(compute_advantages(c, r), group_mean_advantages(r)), 1e-15);
  c.estimator = "ppo";
  EXPECT_THROW(compute_advantages(c, r), input_error);
}

TEST(advantages, match_the_independent_pytorch_reference) {
  const std::string dir = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/losses";
  safetensors_file f = safetensors_file::open(dir + "/goldens.safetensors");
  std::ifstream in(dir + "/goldens.json");
  nlohmann::json cases = nlohmann::json::parse(in);
  auto get = [&](const std::string& name) {
    const st_tensor_view& v = f.tensor(name);
    torch::Tensor t = torch::empty(v.shape, torch::kDouble);
    std::memcpy(t.data_ptr(), v.data, v.size_bytes);
    return t;
  };
  int checked = 0;
  for (const auto& cs : cases["adv"]) {
    const std::string p = "adv." + cs["rewards"].get<std::string>() + ".";
    torch::Tensor r = get(p + "rewards");
    for (const std::string e : cs["estimators"]) {
      advantage_config c;
      c.estimator = e == "group_std_biased" ? "group_std" : e;
      c.unbiased_std = e != "group_std_biased";
      torch::Tensor want = get(p + e);
      EXPECT_LT(((compute_advantages(c, r) - want).abs() / want.abs().clamp_min(1)).max().item<double>(), 1e-10)
          << p << e;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 25);
}

// ---- dynamic sampling --------------------------------------------------------------------

TEST(dynamic_sampling, reports_the_groups_without_variance) {
  torch::Tensor drop = zero_variance_groups(groups({{1, 1, 1}, {1, 0, 1}, {0, 0, 0}}));
  EXPECT_TRUE(drop[0].item<bool>());
  EXPECT_FALSE(drop[1].item<bool>());
  EXPECT_TRUE(drop[2].item<bool>());
  EXPECT_TRUE(zero_variance_groups(groups({{0.5}}))[0].item<bool>());  // size 1
}

TEST(dynamic_sampling, accumulates_kept_groups_across_rounds_until_the_target) {
  dynamic_sampling_buffer buf(3, 5);
  // Round 1: groups 0 and 2 vary.
  EXPECT_EQ(buf.offer(groups({{1, 0}, {1, 1}, {0, 1}})), (std::vector<std::int64_t>{0, 2}));
  EXPECT_FALSE(buf.full());
  EXPECT_EQ(buf.needed(), 1);
  // Round 2: nothing varies.
  EXPECT_TRUE(buf.offer(groups({{0, 0}, {1, 1}})).empty());
  // Round 3: two vary, one is needed: the surplus is dropped.
  EXPECT_EQ(buf.offer(groups({{0, 0}, {0.5, 0}, {0, 2}})), (std::vector<std::int64_t>{1}));
  EXPECT_TRUE(buf.full());
  EXPECT_EQ(buf.rounds(), 3);
  EXPECT_EQ(buf.groups_seen(), 8);
  EXPECT_LT(max_abs_diff(buf.rewards(), groups({{1, 0}, {0, 1}, {0.5, 0}})), 1e-15);
  // A different group size is an error; reset starts over.
  EXPECT_THROW(buf.offer(groups({{1, 0, 1}})), input_error);
  buf.reset();
  EXPECT_EQ(buf.kept(), 0);
  EXPECT_EQ(buf.rewards().numel(), 0);
}

TEST(dynamic_sampling, says_how_to_fix_a_target_that_is_never_met) {
  dynamic_sampling_buffer buf(2, 2);
  buf.offer(groups({{1, 1}}));
  try {
    buf.offer(groups({{0, 0}}));
    ADD_FAILURE() << "no error after max_rounds";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("raise dynamic_sampling_max_gen_batches"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dynamic_sampling_buffer(0), input_error);
}

}  // namespace
}  // namespace troupe
