// The config sections of the GRPO experiment (experiments/grpo/grpo.hpp), without torch so that
// the binary can read and print them.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "actors/env_host.hpp"
#include "core/config_binding.hpp"
#include "algorithms/algorithm_config.hpp"
#include "weights/fp8_weights_config.hpp"

namespace troupe {


// `tokenizer:` for policies built from scratch (policy.path empty); a Hugging Face
// policy uses its own tokenizer.json.
struct tokenizer_section {
  std::string alphabet = "0123456789+-*= \n";  // char tokenizer: one id per character
  template <class V>
  void describe(V& v) {
    v.field("alphabet", alphabet, "characters of the char tokenizer (then <pad>, <bos>, <eos>)");
  }
};

// `sft:` the warm-start stage before GRPO: supervised steps on correct answers.
struct sft_section {
  std::int64_t steps = 100;        // 0 skips the stage
  std::int64_t batch_size = 32;
  double lr = 3e-3;
  std::int64_t microbatch_size = 32;
  std::string target_key = "answer";  // the task metadata the stage learns to write
  std::int64_t eval_every = 50;        // sft experiment: steps between held-out evaluations
  std::int64_t checkpoint_every = 0;   // sft experiment: steps between checkpoints; 0: only at the end

  template <class V>
  void describe(V& v) {
    v.field("steps", steps, "supervised steps before GRPO; 0 skips the stage", at_least<std::int64_t>(0));
    v.field("target_key", target_key, "task metadata holding the answer to learn (then the first stop string)");
    v.field("batch_size", batch_size, "examples per step", at_least<std::int64_t>(1));
    v.field("lr", lr, "AdamW learning rate of the stage", greater_than(0.0));
    v.field("microbatch_size", microbatch_size, "examples per forward/backward pass", at_least<std::int64_t>(1));
    v.field("eval_every", eval_every, "experiment sft: steps between held-out evaluations (and at 0 and the end); 0: "
            "only then", at_least<std::int64_t>(0));
    v.field("checkpoint_every", checkpoint_every, "experiment sft: steps between checkpoints; 0: only at the end",
            at_least<std::int64_t>(0));
  }
};

// `weight_sync:` how the trainer's weights reach the generator after each update.
struct weight_sync_section {
  // raw: the trainer's own precision. fp8: E4M3 with block scales on the way (the
  // selected 2-D weights; docs/weight-sync.md), so the generator samples with the
  // weights it would get over the wire and the loss's importance metrics show the cost.
  std::string codec = "raw";
  fp8_weights_config fp8;
  // The wire to generators on cluster workers (cluster.workers[].generators): gloo (c10d
  // Gloo, tensors through the host) or nccl (GPU to GPU; policy.device must be cuda, and
  // the worker's model on a GPU of its own). A generator in the trainer's process takes
  // the weights in memory either way.
  std::string transport = "gloo";

  template <class V>
  void describe(V& v) {
    v.field("codec", codec, "raw | fp8 (E4M3 block-quantized weights reach the generator)", one_of{"raw", "fp8"});
    v.field("transport", transport, "gloo | nccl: the wire to generators on cluster workers (nccl: CUDA models)",
            one_of{"gloo", "nccl"});
    v.field("fp8", fp8, "the FP8 codec: scaling and which tensors");
  }
};

// `grpo:` the RL stage.
struct grpo_section {
  std::int64_t steps = 60;
  std::int64_t prompts_per_step = 16;
  std::int64_t group_size = 8;             // samples per prompt
  std::int64_t max_new_tokens = 8;
  double temperature = 1.0;
  double top_p = 1.0;
  std::int64_t top_k = 0;
  std::int64_t max_staleness = 0;          // 0: synchronous; k: generation may use weights k versions old
  std::int64_t eval_every = 10;            // steps between held-out evaluations (and at 0 and the end)
  std::int64_t eval_prompts = 200;
  std::int64_t pass_k = 4;                 // pass@k: k samples per eval prompt at `temperature`
  std::int64_t checkpoint_every = 20;      // steps between checkpoints (and at the end); 0: only at the end
  std::int64_t rollouts_logged = 4;        // rollouts stored per step
  double failure_reward = 0.0;             // the reward of a failed or blocked episode
  // DAPO's dynamic sampling (NeMo RL's use_dynamic_sampling): groups whose rewards are
  // all equal are dropped, and batches of prompts_per_step more prompts are sampled
  // until prompts_per_step groups with varied rewards are kept, at most
  // dynamic_sampling_max_gen_batches batches per step (the first included).
  bool dynamic_sampling = false;
  std::int64_t dynamic_sampling_max_gen_batches = 10;
  clipped_pg_config loss;
  advantage_config advantages;

  template <class V>
  void describe(V& v) {
    v.field("steps", steps, "GRPO steps", at_least<std::int64_t>(0));
    v.field("prompts_per_step", prompts_per_step, "prompts per step", at_least<std::int64_t>(1));
    v.field("group_size", group_size, "samples per prompt (the group of the advantages)", at_least<std::int64_t>(1));
    v.field("max_new_tokens", max_new_tokens, "tokens generated per sample at most", at_least<std::int64_t>(1));
    v.field("temperature", temperature, "sampling temperature", greater_than(0.0));
    v.field("top_p", top_p, "nucleus sampling mass", in_range(1e-6, 1.0));
    v.field("top_k", top_k, "top-k sampling; 0 is off", at_least<std::int64_t>(0));
    v.field("max_staleness", max_staleness, "async GRPO: weight versions generation may lag behind; 0 is synchronous",
            at_least<std::int64_t>(0));
    v.field("eval_every", eval_every, "steps between held-out evaluations; 0: only at the start and the end",
            at_least<std::int64_t>(0));
    v.field("eval_prompts", eval_prompts, "held-out prompts per evaluation", at_least<std::int64_t>(1));
    v.field("pass_k", pass_k, "samples per prompt for eval/pass@k", at_least<std::int64_t>(1));
    v.field("checkpoint_every", checkpoint_every, "steps between checkpoints; 0: only at the end",
            at_least<std::int64_t>(0));
    v.field("rollouts_logged", rollouts_logged, "rollouts stored in the run store per step", at_least<std::int64_t>(0));
    v.field("failure_reward", failure_reward, "reward of an episode that failed or was blocked");
    v.field("dynamic_sampling", dynamic_sampling,
            "drop groups whose rewards are all equal and sample more prompts until prompts_per_step groups vary (DAPO)");
    v.field("dynamic_sampling_max_gen_batches", dynamic_sampling_max_gen_batches,
            "dynamic sampling: generation batches per step at most (the first included); the step fails past it",
            in_range<std::int64_t>(1, 1000));
    v.field("loss", loss, "clipped policy-gradient loss (NeMo RL's option names)");
    v.field("advantages", advantages, "advantage estimator");
  }
};

}  // namespace troupe
