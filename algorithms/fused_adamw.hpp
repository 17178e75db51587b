// One AdamW step of a torch::optim::AdamW through ATen's fused kernel (_fused_adamw_),
// the kernel behind PyTorch's AdamW(fused=True).
//
// LibTorch's AdamW::step runs about nine whole-tensor passes per parameter (decay, two
// moment updates, sqrt, divide, add eps, addcdiv) and allocates two temporaries the
// size of each parameter; on the CPU that is memory bound and, for a ~100M model, a
// tenth of a GRPO update. The fused kernel reads and writes each element once.
//
// The optimizer keeps owning its state: the moments and step counts live in its
// AdamWParamState entries, created as AdamW::step creates them, so save()/load(),
// checkpoints and a later AdamW::step see exactly what they would have. The update is
// AdamW's (decoupled weight decay, bias-corrected moments); the fused kernel orders
// the float operations differently, so results agree to rounding (a few ulp), not bit
// for bit. amsgrad is supported as AdamW supports it.
#pragma once

#include <torch/torch.h>

namespace troupe {

// True when `fused_adamw_step` handles every parameter of `opt` (dense float32,
// float64, bfloat16 or float16 tensors on the CPU); otherwise call opt.step().
bool fused_adamw_supported(torch::optim::AdamW& opt);

// opt.step() for parameters that have a gradient, in one fused pass per tensor.
void fused_adamw_step(torch::optim::AdamW& opt);

}  // namespace troupe
