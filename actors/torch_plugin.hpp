// LibTorch is loaded on demand. The `troupe` binary does not link it: loading the
// LibTorch libraries costs 0.3-0.4 s and about 450 MiB before main() even starts, which
// `troupe --help`, `troupe runs` or an experiment without a policy should never pay.
// Everything that needs torch is reached through the torch plugin
// (`libtroupe_torch.so`, built from cli/torch_plugin_entry.cpp), which torch_plugin()
// dlopens the first time it is called.
//
// This header does not include torch; it is the whole contract between the binary and
// the plugin. Bump abi_version when torch_plugin_api changes.
#pragma once

#include <string>
#include <vector>

#include "policies/device.hpp"

namespace troupe {

struct experiment_config;
struct experiment_context;
struct experiment_outcome;

struct torch_plugin_api {
  static constexpr int current_abi = 8;
  int abi_version = current_abi;
  device_report (*probe_devices)() = nullptr;
  // `troupe generate ARGS...` (cli/cmd_generate.cpp): returns the exit code; throws
  // input_error / system_error like the other commands.
  int (*cmd_generate)(const std::vector<std::string>& args) = nullptr;
  int (*cmd_chat)(const std::vector<std::string>& args) = nullptr;  // cli/cmd_chat.cpp
  // The GRPO experiment (experiments/grpo/grpo.hpp).
  experiment_outcome (*run_grpo)(experiment_context& ctx) = nullptr;
  void (*validate_grpo)(const experiment_config& cfg) = nullptr;
  experiment_outcome (*eval_grpo)(experiment_context& ctx, const std::string& checkpoint) = nullptr;
  // The SFT and DPO experiments (experiments/offline/sft.hpp, experiments/offline/dpo.hpp).
  experiment_outcome (*run_sft)(experiment_context& ctx) = nullptr;
  void (*validate_sft)(const experiment_config& cfg) = nullptr;
  experiment_outcome (*run_dpo)(experiment_context& ctx) = nullptr;
  void (*validate_dpo)(const experiment_config& cfg) = nullptr;
  // On-policy distillation (experiments/offline/distill.hpp).
  experiment_outcome (*run_distill)(experiment_context& ctx) = nullptr;
  void (*validate_distill)(const experiment_config& cfg) = nullptr;
  // Registers the remote kinds that need LibTorch ("generator", "trainer_rank") with
  // register_remote_kind (distributed/cluster.hpp). A worker calls it the first time the
  // head asks it for one of torch_remote_kinds().
  void (*register_remote_kinds)() = nullptr;
};

// The plugin's entry point, looked up with dlsym by this name.
inline constexpr const char* torch_plugin_symbol = "troupe_torch_plugin_api";

// Loads the plugin once and returns its API. The plugin is found at $TROUPE_TORCH_PLUGIN
// if set, else beside the running executable, else in ../lib/troupe/ from it. Throws
// system_error naming every path tried and dlerror()'s text when it cannot be loaded.
const torch_plugin_api& torch_plugin();

}  // namespace troupe
