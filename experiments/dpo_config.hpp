// The `dpo:` section of the dpo experiment (experiments/offline/dpo.hpp), without torch so that the
// binary can read and print it. The optimizer is the `trainer:` section; the data the
// `data:` section (experiments/sft_config.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "core/config_binding.hpp"
#include "algorithms/algorithm_config.hpp"

namespace troupe {

struct dpo_section {
  std::int64_t steps = 200;
  std::int64_t batch_size = 32;       // preference pairs per optimizer step
  std::int64_t eval_every = 50;       // steps between held-out evaluations (and at 0 and the end)
  std::int64_t checkpoint_every = 0;  // steps between checkpoints (and at the end); 0: only at the end
  // A checkpoint directory (Hugging Face layout, e.g. an sft run's
  // checkpoints/step_000300) whose weights the policy, and so the reference, start
  // from. Empty: the small model of `policy:` with its initial weights.
  std::string init_from;
  dpo_config loss;

  template <class V>
  void describe(V& v) {
    v.field("steps", steps, "DPO optimizer steps", at_least<std::int64_t>(0));
    v.field("batch_size", batch_size, "preference pairs per step", at_least<std::int64_t>(1));
    v.field("eval_every", eval_every, "steps between held-out evaluations; 0: only at the start and the end",
            at_least<std::int64_t>(0));
    v.field("checkpoint_every", checkpoint_every, "steps between checkpoints; 0: only at the end",
            at_least<std::int64_t>(0));
    v.field("init_from", init_from, "checkpoint directory to start the policy and the reference from");
    v.field("loss", loss, "the preference loss (NeMo RL's option names; beta = reference_policy_kl_penalty)");
  }
};

}  // namespace troupe
