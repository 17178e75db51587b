// The `data:` section of the offline experiments (sft and dpo: experiments/offline/sft.hpp,
// experiments/offline/dpo.hpp), without torch so that the binary can read and print it. The sft
// experiment's steps, batch size, learning rate, evaluation and checkpoint cadence are
// the `sft:` section (experiments/grpo_config.hpp), which GRPO's warm start shares.
#pragma once

#include <cstdint>
#include <string>

#include "core/config_binding.hpp"

namespace troupe {

struct data_section {
  // Where the examples come from: a JSON Lines file (environments/datasets.hpp has the
  // formats), or `generate: arithmetic` for problems of the arithmetic generator with
  // the `env.options` digits and operators.
  std::string path;
  std::string generate;                // "" | "arithmetic"
  // Held-out examples: a file of their own, or else eval_fraction of `path` (chosen by
  // a hash of the line's index and run.seed). Generated data draws the eval split.
  std::string eval_path;
  double eval_fraction = 0.05;
  std::int64_t train_examples = 20000;  // generate: examples drawn for training
  std::int64_t eval_examples = 256;     // held-out examples evaluated at most (generate: drawn)
  // Layout of a batch: false pads one example per row; true packs several per row up
  // to max_length tokens, with attention kept inside each example (sft only; dpo pads).
  bool packing = false;
  // Tokens per example (and per packed row) at most; longer responses are cut at
  // their end. 0: the policy's max_position_embeddings.
  std::int64_t max_length = 0;

  template <class V>
  void describe(V& v) {
    v.field("path", path, "JSON Lines file of training examples (or use generate)");
    v.field("generate", generate, "'' | arithmetic: examples from the arithmetic generator (env.options)",
            one_of{"", "arithmetic"});
    v.field("eval_path", eval_path, "JSON Lines file of held-out examples; empty holds out eval_fraction of path");
    v.field("eval_fraction", eval_fraction, "share of path held out when eval_path is empty", in_range(0.0, 0.9));
    v.field("train_examples", train_examples, "generate: training examples drawn", at_least<std::int64_t>(1));
    v.field("eval_examples", eval_examples, "held-out examples evaluated at most (generate: drawn)",
            at_least<std::int64_t>(1));
    v.field("packing", packing, "pack several examples per row (attention stays inside each); sft only");
    v.field("max_length", max_length, "tokens per example / packed row at most; 0 = policy.max_position_embeddings",
            at_least<std::int64_t>(0));
  }
};

}  // namespace troupe
