// The torch plugin's entry point (see actors/torch_plugin.hpp): the only symbol the
// `troupe` binary looks up in libtroupe_torch.so.
#include "experiments/offline/distill.hpp"
#include "experiments/offline/dpo.hpp"
#include "experiments/experiment.hpp"
#include "experiments/grpo/grpo.hpp"
#include "experiments/offline/sft.hpp"
#include "distributed/cluster.hpp"
#include "distributed/data_parallel.hpp"
#include "experiments/grpo/remote_kinds.hpp"
#include "actors/torch_plugin.hpp"
#include "cli/commands.hpp"

namespace {

// The torch kinds a worker can spawn (distributed/cluster.hpp torch_remote_kinds()): the
// generator and data-parallel trainer ranks register here as they are built.
void register_torch_remote_kinds() {
  troupe::register_remote_kind("generator", &troupe::spawn_remote_generator);
  troupe::register_remote_kind("trainer_rank", &troupe::spawn_trainer_rank);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const troupe::torch_plugin_api* troupe_torch_plugin_api() {
  static const troupe::torch_plugin_api api = [] {
    troupe::torch_plugin_api a;
    a.probe_devices = &troupe::probe_devices;
    a.cmd_generate = &troupe::cli::cmd_generate;
    a.cmd_chat = &troupe::cli::cmd_chat;
    a.run_grpo = &troupe::run_grpo;
    a.validate_grpo = &troupe::validate_grpo;
    a.eval_grpo = &troupe::eval_grpo;
    a.run_sft = &troupe::run_sft;
    a.validate_sft = &troupe::validate_sft;
    a.run_dpo = &troupe::run_dpo;
    a.validate_dpo = &troupe::validate_dpo;
    a.run_distill = &troupe::run_distill;
    a.validate_distill = &troupe::validate_distill;
    a.register_remote_kinds = &register_torch_remote_kinds;
    return a;
  }();
  return &api;
}
