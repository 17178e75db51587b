// `troupe eval CONFIG --checkpoint DIR`: the experiment's held-out evaluation of a
// checkpoint, printed and recorded in a new run directory (eval-<date>) of its own.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"

namespace troupe::cli {

namespace {

void print_eval_help() {
  std::cout << "usage: troupe eval CONFIG --checkpoint DIR [key=value ...] [--json]\n\n"
               "Evaluates the policy weights at DIR (a checkpoint such as runs/<run>/checkpoints/step_000600,\n"
               "or any Hugging Face model directory of the config's model shape) with the experiment's\n"
               "held-out evaluation: for grpo, eval/pass@1 (greedy) and eval/pass@k (grpo.pass_k samples)\n"
               "on grpo.eval_prompts tasks of the eval split. The results are printed and stored in a\n"
               "new run directory eval-<date> under run.dir.\n\n"
               "  --checkpoint DIR  the weights to evaluate (required)\n"
               "  key=value         override config keys, e.g. grpo.eval_prompts=500 grpo.pass_k=8\n"
               "  --json            print one JSON object (the results) instead of the text summary\n";
}

}  // namespace

int cmd_eval(const args& a) {
  if (wants_help(a)) {
    print_eval_help();
    return 0;
  }
  std::string config_path, checkpoint;
  std::vector<std::string> overrides;
  bool json = false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--json") json = true;
    else if (a[i] == "--checkpoint") {
      if (i + 1 >= a.size()) throw input_error("eval: --checkpoint needs a directory");
      checkpoint = a[++i];
    } else if (a[i].rfind("--", 0) == 0) throw input_error("eval: unknown option '" + a[i] + "' (see troupe eval --help)");
    else if (config_path.empty() && a[i].find('=') == std::string::npos) config_path = a[i];
    else overrides.push_back(a[i]);
  }
  if (config_path.empty()) throw input_error("eval: missing CONFIG (usage: troupe eval CONFIG --checkpoint DIR)");
  if (checkpoint.empty()) throw input_error("eval: missing --checkpoint DIR");

  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::path(checkpoint) / "config.json", ec))
    throw input_error("--checkpoint '" + checkpoint + "': not a model directory (no config.json)");
  const experiment_config cfg = resolve_config(config_path, overrides);
  const experiment_entry* entry = find_experiment(cfg.experiment);
  if (!entry->evaluate) throw input_error("eval: the " + cfg.experiment + " experiment has no evaluation");
  new_run run = create_run_dir(cfg.run, "eval", write_config(cfg));
  const std::string path = run.path;
  auto body = [&](experiment_context& ctx) { return entry->evaluate(ctx, checkpoint); };
  // With --json, stdout carries the JSON object only; the progress goes to stderr. It is
  // printed inside drive_experiment's finish step, because a cluster head exits there.
  auto print_json = [&](int code) {
    if (code != 0 || !json) return code;
    auto store = run_store::open(path + "/" + store_file_name, store_mode::read_only);
    nlohmann::json out = {{"checkpoint", checkpoint}, {"run", std::filesystem::absolute(path).string()}};
    for (const auto& m : store.metrics())
      if (m.name.rfind("eval/", 0) == 0) {
        out[m.name.substr(5)] = m.value;
        out["step"] = m.step;
      }
    std::cout << out.dump() << '\n';
    return 0;
  };
  return drive_experiment(std::move(run), cfg, std::nullopt, body, json ? std::cerr : std::cout, print_json);
}

}  // namespace troupe::cli
