// Weight sync across two processes through gloo_weight_transport (actors/
// weight_transport.hpp): seconds per update of a Llama-shaped weights map, raw against
// FP8 on the wire. This process is rank 0; it starts itself again as rank 1. The baseline
// in the same run is the raw broadcast; the receive side's time includes FP8 decoding.
//   build/bench/weight_transport_bench [--layers 12] [--hidden 768] [--rounds 5]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "actors/weight_transport.hpp"
#include "policies/fp8_weights.hpp"

extern char** environ;

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

// Llama-like: per layer q, k, v, o (hidden x hidden), gate, up (4 hidden x hidden), down
// (hidden x 4 hidden), two norms; embeddings and head of a 32000 vocabulary. fp32.
named_tensors llama_like(int layers, std::int64_t hidden, bool zeros) {
  torch::manual_seed(1);
  auto make = [zeros](std::vector<std::int64_t> shape) { return zeros ? torch::zeros(shape) : torch::randn(shape) * 0.02; };
  named_tensors w;
  w.insert("model.embed_tokens.weight", make({32000, hidden}));
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n : {"q_proj", "k_proj", "v_proj", "o_proj"})
      w.insert(p + "self_attn." + n + ".weight", make({hidden, hidden}));
    w.insert(p + "mlp.gate_proj.weight", make({4 * hidden, hidden}));
    w.insert(p + "mlp.up_proj.weight", make({4 * hidden, hidden}));
    w.insert(p + "mlp.down_proj.weight", make({hidden, 4 * hidden}));
    w.insert(p + "input_layernorm.weight", make({hidden}));
    w.insert(p + "post_attention_layernorm.weight", make({hidden}));
  }
  w.insert("model.norm.weight", make({hidden}));
  w.insert("lm_head.weight", make({32000, hidden}));
  return w;
}

gloo_transport_options options(int port, int rank, bool fp8) {
  gloo_transport_options o;
  o.port = port;
  o.rank = rank;
  o.timeout_s = 120;
  if (fp8) o.fp8 = fp8_weights_config{};
  return o;
}

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

int run_peer(int port, bool fp8, int layers, std::int64_t hidden, int rounds) {
  gloo_weight_transport t(options(port, 1, fp8));
  auto w = llama_like(layers, hidden, true);
  t.receive(w);  // warm-up
  const auto start = clock_type::now();
  for (int r = 0; r < rounds; ++r) t.receive(w);
  std::printf("  receiver: %.3f s per update\n", seconds_since(start) / rounds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int layers = 12, rounds = 5, port = 29611;
  std::int64_t hidden = 768;
  int peer_fp8 = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--layers") layers = std::stoi(argv[i + 1]);
    else if (a == "--hidden") hidden = std::stoll(argv[i + 1]);
    else if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
    else if (a == "--port") port = std::stoi(argv[i + 1]);
    else if (a == "--peer-fp8") peer_fp8 = std::stoi(argv[i + 1]);
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (peer_fp8 >= 0) return run_peer(port, peer_fp8 == 1, layers, hidden, rounds);

  const auto w = llama_like(layers, hidden, false);
  std::int64_t params = 0;
  for (const auto& t : w) params += t.value().numel();
  std::printf("weights: %.1fM fp32 parameters (%.0f MiB), %d layers, hidden %lld, %d rounds\n", params / 1e6,
              params * 4 / 1048576.0, layers, static_cast<long long>(hidden), rounds);
  {
    const auto start = clock_type::now();
    const auto e = fp8_encode_weights(w);
    const double enc = seconds_since(start);
    const auto start2 = clock_type::now();
    const auto d = fp8_decode_weights(e);
    std::printf("fp8 codec alone (%d threads): encode %.3f s, decode %.3f s\n", at::get_num_threads(), enc,
                seconds_since(start2));
  }
  for (int fp8 : {0, 1}) {
    std::vector<std::string> args = {"/proc/self/exe", "--port", std::to_string(port + fp8), "--peer-fp8",
                                     std::to_string(fp8), "--layers", std::to_string(layers), "--hidden",
                                     std::to_string(hidden), "--rounds", std::to_string(rounds)};
    std::vector<char*> av;
    for (auto& s : args) av.push_back(s.data());
    av.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawn(&pid, av[0], nullptr, nullptr, av.data(), environ) != 0) return 1;
    {
      gloo_weight_transport t(options(port + fp8, 0, fp8 == 1));
      t.send(0, w);  // warm-up
      const auto start = clock_type::now();
      for (int r = 0; r < rounds; ++r) t.send(r + 1, w);
      const double s = seconds_since(start) / rounds;
      std::printf("%s: %.1f MiB on the wire, sender %.3f s per update (%.2f GB/s of fp32 weights)\n",
                  fp8 ? "fp8" : "raw", t.last_wire_bytes() / 1048576.0, s, params * 4 / s / 1e9);
      std::fflush(stdout);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  return 0;
}
