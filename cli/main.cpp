// troupe: post-training language-model policies with reinforcement learning, where
// every part of an experiment is an actor. This file only dispatches subcommands.
#include <iostream>
#include <string>

#include "actors/cluster_library.hpp"
#include "actors/torch_plugin.hpp"
#include "cli/commands.hpp"
#include "core/error.hpp"

namespace {

constexpr const char* usage = R"(usage: troupe COMMAND [ARGS...]

Commands:
  run CONFIG [key=value ...]   run the experiment a config names, in a new run directory
                               (run --resume RUN_DIR continues one)
  eval CONFIG --checkpoint DIR held-out evaluation (pass@1, pass@k) of a checkpoint
  runs list|show|export        inspect the run directories and their stores
  generate --model DIR --prompt TEXT   sample a completion from a Hugging Face model
  chat --model DIR [--rails FILE]      a guarded chat on stdin: input rails, model, output rails
  version                      versions of troupe, CAF, LibTorch, CUDA and NCCL
  envs list [--plugin PATH]    the registered environments, built in or from plugins
  rails eval|check FILE ...    measure a rails file on labeled cases, or check one text
  worker --join HOST:PORT --name N     serve a cluster head: run the actors it asks for
  cluster certs DIR [--nodes a,b]      make a CA and node certificates for cluster TLS

Run `troupe COMMAND --help` for a command's options.
)";

}  // namespace

int main(int argc, char** argv) {
  troupe::cli::args rest(argv + (argc > 1 ? 2 : 1), argv + argc);
  const std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "run") return troupe::cli::cmd_run(rest);
    if (cmd == "runs") return troupe::cli::cmd_runs(rest);
    if (cmd == "eval") return troupe::cli::cmd_eval(rest);
    if (cmd == "version" || cmd == "--version") return troupe::cli::cmd_version(rest);
    if (cmd == "envs") return troupe::cli::cmd_envs(rest);
    if (cmd == "rails") return troupe::cli::cmd_rails(rest);
    if (cmd == "worker") return troupe::cluster_library().cmd_worker(rest);
    if (cmd == "cluster") return troupe::cluster_library().cmd_cluster(rest);
    if (cmd == "generate") return troupe::torch_plugin().cmd_generate(rest);
    if (cmd == "chat") return troupe::torch_plugin().cmd_chat(rest);
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::cout << usage;
      return 0;
    }
    if (cmd.empty()) {
      std::cerr << usage;
      return 2;
    }
    std::cerr << "troupe: unknown command '" << cmd << "'\n" << usage;
    return 2;
  } catch (const troupe::input_error& e) {
    std::cerr << "troupe: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "troupe: " << e.what() << '\n';
    return 1;
  }
}
