#include "algorithms/fused_adamw.hpp"

#include <memory>
#include <vector>

namespace troupe {

bool fused_adamw_supported(torch::optim::AdamW& opt) {
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) {
      const auto t = p.scalar_type();
      if (!p.device().is_cpu() || p.is_sparse() || !p.is_contiguous()) return false;
      if (t != torch::kFloat32 && t != torch::kFloat64 && t != torch::kBFloat16 && t != torch::kFloat16) return false;
    }
  return true;
}

void fused_adamw_step(torch::optim::AdamW& opt) {
  torch::NoGradGuard no_grad;
  auto& state = opt.state();
  for (auto& group : opt.param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;  // as AdamW::step: no gradient, no update
      TORCH_CHECK(!p.grad().is_sparse(), "fused_adamw_step: sparse gradients are not supported");
      auto& slot = state[p.unsafeGetTensorImpl()];
      if (!slot) {  // AdamW::step's state initialization
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      if (o.amsgrad() && !s.max_exp_avg_sq().defined())
        s.max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      s.step(s.step() + 1);
      params.push_back(p);
      grads.push_back(p.grad().contiguous());
      exp_avgs.push_back(s.exp_avg());
      exp_avg_sqs.push_back(s.exp_avg_sq());
      if (o.amsgrad()) max_exp_avg_sqs.push_back(s.max_exp_avg_sq());
      // The kernel reads the step count (already incremented, as PyTorch's optimizer
      // passes it) to form the bias corrections; float32 as PyTorch keeps it.
      steps.push_back(torch::full({}, static_cast<double>(s.step()), torch::kFloat32));
    }
    if (params.empty()) continue;
    at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, o.lr(), std::get<0>(o.betas()),
                      std::get<1>(o.betas()), o.weight_decay(), o.eps(), o.amsgrad(), /*maximize=*/false);
  }
}

}  // namespace troupe
