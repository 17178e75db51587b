// The top-level config of `troupe run`: one section per component, each with its
// defaults in its own struct (core/config_binding.hpp). A component that adds a section
// adds one field here; `--print-config` and the run's config.yaml list them all.
#pragma once

#include <string>

#include "actors/cluster_config.hpp"
#include "experiments/distill_config.hpp"
#include "experiments/dpo_config.hpp"
#include "experiments/grpo_config.hpp"
#include "experiments/sft_config.hpp"
#include "experiments/smoke.hpp"
#include "actors/system.hpp"
#include "core/config_binding.hpp"
#include "core/run_dir.hpp"
#include "guardrails/rail.hpp"
#include "algorithms/algorithm_config.hpp"
#include "policies/model_config.hpp"
#include "rewards/reward.hpp"

namespace troupe {

struct experiment_config {
  std::string experiment;  // which experiment runs: a name from experiments()
  run_section run;
  system_section system;
  smoke_section smoke;
  policy_section policy;
  tokenizer_section tokenizer;
  trainer_section trainer;
  sft_section sft;
  grpo_section grpo;
  env_section env;
  reward_section reward;
  guardrails_section guardrails;
  weight_sync_section weight_sync;
  data_section data;
  dpo_section dpo;
  distill_section distill;
  cluster_section cluster;
  // The file it was read from (`troupe run CONFIG`), for messages that quote it; not a
  // key, so never written to a run's config.yaml. Empty when read from elsewhere.
  std::string source;

  template <class V>
  void describe(V& v) {
    v.field("experiment", experiment, "what to run (see `troupe run --help` for the list)");
    v.field("run", run, "where the run is stored");
    v.field("system", system, "actor system and display");
    v.field("smoke", smoke, "the smoke experiment");
    v.field("policy", policy, "the policy: a Hugging Face directory or a small model built here");
    v.field("tokenizer", tokenizer, "the tokenizer of a small model");
    v.field("trainer", trainer, "optimizer and microbatching of the RL stage");
    v.field("sft", sft, "the warm-start supervised stage");
    v.field("grpo", grpo, "the GRPO stage");
    v.field("env", env, "the environment");
    v.field("reward", reward, "how reward components combine");
    v.field("guardrails", guardrails, "rails on the policy's output, as reward components");
    v.field("weight_sync", weight_sync, "how updated weights reach the generator");
    v.field("data", data, "the dataset of the sft and dpo experiments");
    v.field("dpo", dpo, "the dpo experiment");
    v.field("distill", distill, "the on-policy distillation experiment");
    v.field("cluster", cluster, "worker processes and hosts: where the head listens, TLS, the placement");
  }
};

}  // namespace troupe
