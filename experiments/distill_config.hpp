// The `distill:` section of the on-policy distillation experiment (experiments/offline/distill.hpp),
// without torch so that the binary can read and print it. The student is `policy:`;
// its optimizer the `trainer:` section.
#pragma once

#include <cstdint>
#include <string>

#include "core/config_binding.hpp"
#include "algorithms/algorithm_config.hpp"

namespace troupe {

struct distill_section {
  // The teacher: a checkpoint directory (Hugging Face layout) of a model trained by
  // troupe with the same tokenizer.alphabet, e.g. an sft run's checkpoints/step_001500.
  std::string teacher;
  // The student's starting weights: a checkpoint directory, or empty for the small
  // model of `policy:` with its initial weights.
  std::string init_from;
  std::int64_t steps = 100;
  std::int64_t prompts_per_step = 32;
  std::int64_t samples_per_prompt = 2;   // student completions per prompt
  std::int64_t max_new_tokens = 6;
  double temperature = 1.0;              // the student's sampling temperature
  std::int64_t eval_every = 25;          // steps between held-out evaluations (and at 0 and the end)
  std::int64_t eval_prompts = 200;
  std::int64_t checkpoint_every = 0;     // 0: only at the end
  distillation_config loss;

  template <class V>
  void describe(V& v) {
    v.field("teacher", teacher, "checkpoint directory of the teacher (same tokenizer.alphabet)");
    v.field("init_from", init_from, "checkpoint directory the student starts from; empty: policy's initial weights");
    v.field("steps", steps, "distillation steps", at_least<std::int64_t>(0));
    v.field("prompts_per_step", prompts_per_step, "prompts per step", at_least<std::int64_t>(1));
    v.field("samples_per_prompt", samples_per_prompt, "student samples per prompt", at_least<std::int64_t>(1));
    v.field("max_new_tokens", max_new_tokens, "tokens per sample at most", at_least<std::int64_t>(1));
    v.field("temperature", temperature, "the student's sampling temperature", greater_than(0.0));
    v.field("eval_every", eval_every, "steps between held-out evaluations; 0: only at the start and the end",
            at_least<std::int64_t>(0));
    v.field("eval_prompts", eval_prompts, "held-out prompts per evaluation", at_least<std::int64_t>(1));
    v.field("checkpoint_every", checkpoint_every, "steps between checkpoints; 0: only at the end",
            at_least<std::int64_t>(0));
    v.field("loss", loss, "top-k distillation loss (NeMo RL's option names)");
  }
};

}  // namespace troupe
