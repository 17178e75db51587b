// fused_adamw_step against LibTorch's own AdamW::step: the same parameters and moments
// after several steps (to rounding), the state kept where AdamW keeps it (so a saved
// optimizer reloads into a plain AdamW that carries on), parameters without a gradient
// left alone, amsgrad.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <sstream>

#include "algorithms/fused_adamw.hpp"

namespace troupe {
namespace {

// Three parameters of different shapes and a deterministic gradient per step; the last
// parameter gets no gradient on odd steps.
std::vector<torch::Tensor> make_params(torch::Dtype dtype) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> ps = {torch::randn({7, 5}, dtype), torch::randn({11}, dtype), torch::randn({3, 2, 4}, dtype)};
  for (auto& p : ps) p.set_requires_grad(true);
  return ps;
}

void set_grads(std::vector<torch::Tensor>& ps, int step) {
  torch::NoGradGuard g;
  for (std::size_t i = 0; i < ps.size(); ++i) {
    if (i == 2 && step % 2 == 1) {
      ps[i].mutable_grad() = torch::Tensor();
      continue;
    }
    auto seed_gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<std::uint64_t>(100 * step + i));
    ps[i].mutable_grad() = at::normal(0.0, 1.0 + static_cast<double>(step), ps[i].sizes(), seed_gen).to(ps[i].scalar_type());
  }
}

std::vector<torch::Tensor> clones(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().set_requires_grad(true));
  return out;
}

torch::optim::AdamWOptions options(bool amsgrad) {
  return torch::optim::AdamWOptions(1e-2).betas({0.9, 0.99}).eps(1e-8).weight_decay(0.05).amsgrad(amsgrad);
}

void expect_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::allclose(a[i], b[i], tol, tol)) << "tensor " << i << " differs by "
                                                       << (a[i] - b[i]).abs().max().item<double>();
}

const torch::optim::AdamWParamState& state_of(torch::optim::AdamW& opt, const torch::Tensor& p) {
  return static_cast<const torch::optim::AdamWParamState&>(*opt.state().at(p.unsafeGetTensorImpl()));
}

void run_against_adamw(torch::Dtype dtype, bool amsgrad, double tol) {
  auto ref = make_params(dtype);
  auto fused = clones(ref);
  torch::optim::AdamW ref_opt(ref, options(amsgrad));
  torch::optim::AdamW fused_opt(fused, options(amsgrad));
  ASSERT_TRUE(fused_adamw_supported(fused_opt));
  for (int step = 0; step < 5; ++step) {
    set_grads(ref, step);
    set_grads(fused, step);
    ref_opt.step();
    fused_adamw_step(fused_opt);
    expect_close(fused, ref, tol);
  }
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const auto &r = state_of(ref_opt, ref[i]), &f = state_of(fused_opt, fused[i]);
    EXPECT_EQ(f.step(), r.step());
    EXPECT_TRUE(torch::allclose(f.exp_avg(), r.exp_avg(), tol, tol));
    EXPECT_TRUE(torch::allclose(f.exp_avg_sq(), r.exp_avg_sq(), tol, tol));
    if (amsgrad) {
      EXPECT_TRUE(torch::allclose(f.max_exp_avg_sq(), r.max_exp_avg_sq(), tol, tol));
    }
  }
  EXPECT_EQ(state_of(fused_opt, fused[2]).step(), 3);  // no gradient on steps 1 and 3: not updated
}

TEST(fused_adamw, matches_libtorch_adamw_step_in_fp64) { run_against_adamw(torch::kFloat64, false, 1e-12); }

TEST(fused_adamw, matches_libtorch_adamw_step_in_fp32) { run_against_adamw(torch::kFloat32, false, 1e-6); }

TEST(fused_adamw, matches_libtorch_adamw_step_with_amsgrad) { run_against_adamw(torch::kFloat64, true, 1e-12); }

TEST(fused_adamw, a_parameter_without_gradient_keeps_its_value_and_gets_no_state) {
  auto ps = make_params(torch::kFloat32);
  torch::optim::AdamW opt(ps, options(false));
  auto before = ps[2].detach().clone();
  set_grads(ps, 1);  // parameter 2 has no gradient
  fused_adamw_step(opt);
  EXPECT_TRUE(torch::equal(ps[2], before));
  EXPECT_EQ(opt.state().count(ps[2].unsafeGetTensorImpl()), 0U);
}

TEST(fused_adamw, saved_state_reloads_into_a_plain_adamw_that_carries_on) {
  auto a = make_params(torch::kFloat64);
  auto b = clones(a);
  torch::optim::AdamW fused_opt(a, options(false)), plain_opt(b, options(false));
  for (int step = 0; step < 3; ++step) {
    set_grads(a, step);
    set_grads(b, step);
    fused_adamw_step(fused_opt);
    plain_opt.step();
  }
  // Reload the fused optimizer's state into a fresh AdamW over copies of its weights.
  std::stringstream saved;
  torch::serialize::OutputArchive out;
  fused_opt.save(out);
  out.save_to(saved);
  auto c = clones(a);
  torch::optim::AdamW reloaded(c, options(false));
  torch::serialize::InputArchive in;
  in.load_from(saved);
  reloaded.load(in);
  set_grads(c, 3);
  set_grads(b, 3);
  reloaded.step();
  plain_opt.step();
  expect_close(c, b, 1e-12);
  EXPECT_EQ(state_of(reloaded, c[0]).step(), 4);
}

TEST(fused_adamw, only_dense_float_cpu_parameters_are_supported) {
  auto ints = torch::zeros({3}, torch::kInt64);
  torch::optim::AdamW opt(std::vector<torch::Tensor>{ints}, options(false));
  EXPECT_FALSE(fused_adamw_supported(opt));
  auto strided = torch::zeros({4, 4}).t().set_requires_grad(true);
  torch::optim::AdamW opt2(std::vector<torch::Tensor>{strided}, options(false));
  EXPECT_FALSE(fused_adamw_supported(opt2));
}

}  // namespace
}  // namespace troupe
