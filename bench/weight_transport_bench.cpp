// Weight sync through the remote transports (weights/weight_transport.hpp): seconds per
// update of a weights map, raw against FP8 on the wire, single- against double-buffered
// buckets (the single-buffered raw run is the baseline, in the same run).
//   --device cpu (default): gloo_weight_transport across two processes, a Llama-shaped
//     fp32 map. This process is rank 0; it starts itself again as rank 1. The receive
//     side's time includes FP8 decoding.
//   --device cuda: nccl_weight_transport with one rank on this process's GPU 0 (one GPU
//     allows no more), sending to itself through loopback(): buckets, FP8 encode, NCCL
//     broadcast, decode into the receiver's tensors. --model qwen2-0.5b gives the
//     Qwen2-0.5B shapes (random weights) in --dtype bfloat16 (default) or float32.
//   build/bench/weight_transport_bench [--layers 12] [--hidden 768] [--rounds 5]
//   build/bench/weight_transport_bench --device cuda --model qwen2-0.5b [--rounds 5]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "weights/nccl_weight_transport.hpp"
#include "weights/weight_transport.hpp"
#include "weights/fp8_weights.hpp"

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

// Qwen2-0.5B (hidden 896, 24 layers, MLP 4864, 14 query heads and 2 KV heads of 64,
// vocabulary 151936, q/k/v biases, embeddings tied to the head): about 494M parameters.
named_tensors qwen2_05b(torch::ScalarType dtype, torch::Device device, bool zeros) {
  torch::manual_seed(1);
  const std::int64_t hidden = 896, mlp = 4864, kv = 2 * 64, vocab = 151936;
  const auto opts = torch::TensorOptions().dtype(dtype).device(device);
  auto make = [&](std::vector<std::int64_t> shape) {
    return zeros ? torch::zeros(shape, opts) : (torch::randn(shape, opts.dtype(torch::kFloat32)) * 0.02).to(dtype);
  };
  named_tensors w;
  w.insert("model.embed_tokens.weight", make({vocab, hidden}));
  for (int l = 0; l < 24; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.insert(p + "self_attn.q_proj.weight", make({hidden, hidden}));
    w.insert(p + "self_attn.q_proj.bias", make({hidden}));
    w.insert(p + "self_attn.k_proj.weight", make({kv, hidden}));
    w.insert(p + "self_attn.k_proj.bias", make({kv}));
    w.insert(p + "self_attn.v_proj.weight", make({kv, hidden}));
    w.insert(p + "self_attn.v_proj.bias", make({kv}));
    w.insert(p + "self_attn.o_proj.weight", make({hidden, hidden}));
    w.insert(p + "mlp.gate_proj.weight", make({mlp, hidden}));
    w.insert(p + "mlp.up_proj.weight", make({mlp, hidden}));
    w.insert(p + "mlp.down_proj.weight", make({hidden, mlp}));
    w.insert(p + "input_layernorm.weight", make({hidden}));
    w.insert(p + "post_attention_layernorm.weight", make({hidden}));
  }
  w.insert("model.norm.weight", make({hidden}));
  return w;
}

gloo_transport_options options(int port, int rank, bool fp8, bool double_buffer) {
  gloo_transport_options o;
  o.port = port;
  o.rank = rank;
  o.timeout_s = 120;
  o.double_buffer = double_buffer;
  if (fp8) o.fp8 = fp8_weights_config{};
  return o;
}

const char* buffering(bool double_buffer) { return double_buffer ? "double" : "single"; }

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

int run_peer(int port, bool fp8, bool double_buffer, int layers, std::int64_t hidden, int rounds) {
  gloo_weight_transport t(options(port, 1, fp8, double_buffer));
  auto w = llama_like(layers, hidden, true);
  t.receive(w);  // warm-up
  const auto start = clock_type::now();
  for (int r = 0; r < rounds; ++r) t.receive(w);
  std::printf("  receiver: %.3f s per update\n", seconds_since(start) / rounds);
  return 0;
}

// One GPU: a one-rank NCCL communicator sending to itself (loopback), raw and FP8,
// single- and double-buffered.
int run_cuda(const std::string& model, torch::ScalarType dtype, int rounds, int port) {
  if (!torch::cuda::is_available()) {
    std::cerr << "--device cuda: no CUDA device\n";
    return 2;
  }
  if (model != "qwen2-0.5b") {
    std::cerr << "--device cuda: --model qwen2-0.5b is the one model shape here\n";
    return 2;
  }
  const torch::Device dev(torch::kCUDA, 0);
  const auto from = qwen2_05b(dtype, dev, false);
  auto into = qwen2_05b(dtype, dev, true);
  std::int64_t params = 0, bytes = 0;
  for (const auto& t : from) {
    params += t.value().numel();
    bytes += t.value().numel() * static_cast<std::int64_t>(t.value().element_size());
  }
  std::printf("weights: Qwen2-0.5B shapes, %.1fM %s parameters (%.0f MiB) on %s, NCCL one rank, %d rounds\n",
              params / 1e6, c10::toString(dtype), bytes / 1048576.0, dev.str().c_str(), rounds);
  int run = 0;
  for (int fp8 : {0, 1}) {
    for (bool double_buffer : {false, true}) {
      nccl_transport_options o;
      o.port = port + run++;
      o.rank = 0;
      o.world_size = 1;
      o.timeout_s = 120;
      o.double_buffer = double_buffer;
      if (fp8) o.fp8 = fp8_weights_config{};
      nccl_weight_transport t(o);
      t.loopback(0, from, into);  // warm-up: buffers, NCCL's first launch
      const auto start = clock_type::now();
      for (int r = 0; r < rounds; ++r) t.loopback(r + 1, from, into);
      const double s = seconds_since(start) / rounds;
      std::printf("%s, %s-buffered: %.1f MiB on the wire, %.4f s per update (%.1f GB/s of %s weights)\n",
                  fp8 ? "fp8" : "raw", buffering(double_buffer), t.last_wire_bytes() / 1048576.0, s, bytes / s / 1e9,
                  c10::toString(dtype));
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int layers = 12, rounds = 5, port = 29611;
  std::int64_t hidden = 768;
  int peer_fp8 = -1, peer_double = 1;
  std::string device = "cpu", model = "llama", dtype = "bfloat16";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--device") device = argv[i + 1];
    else if (a == "--model") model = argv[i + 1];
    else if (a == "--dtype") dtype = argv[i + 1];
    else if (a == "--peer-double") peer_double = std::stoi(argv[i + 1]);
    else if (a == "--layers") layers = std::stoi(argv[i + 1]);
    else if (a == "--hidden") hidden = std::stoll(argv[i + 1]);
    else if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
    else if (a == "--port") port = std::stoi(argv[i + 1]);
    else if (a == "--peer-fp8") peer_fp8 = std::stoi(argv[i + 1]);
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  if (peer_fp8 >= 0) return run_peer(port, peer_fp8 == 1, peer_double == 1, layers, hidden, rounds);
  if (device == "cuda") {
    try {
      return run_cuda(model, dtype == "float32" ? torch::kFloat32 : torch::kBFloat16, rounds, port);
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return 1;
    }
  }
  if (device != "cpu" || model != "llama") {
    std::cerr << "--device cpu runs the Llama-shaped map (--layers, --hidden)\n";
    return 2;
  }

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
  int run = 0;
  for (int fp8 : {0, 1}) for (int double_buffer : {0, 1}) {
    const int p = port + run++;
    std::vector<std::string> args = {"/proc/self/exe", "--port", std::to_string(p), "--peer-fp8",
                                     std::to_string(fp8), "--peer-double", std::to_string(double_buffer),
                                     "--layers", std::to_string(layers), "--hidden",
                                     std::to_string(hidden), "--rounds", std::to_string(rounds)};
    std::vector<char*> av;
    for (auto& s : args) av.push_back(s.data());
    av.push_back(nullptr);
    pid_t pid = 0;
    if (::posix_spawn(&pid, av[0], nullptr, nullptr, av.data(), environ) != 0) return 1;
    {
      gloo_weight_transport t(options(p, 0, fp8 == 1, double_buffer == 1));
      t.send(0, w);  // warm-up
      const auto start = clock_type::now();
      for (int r = 0; r < rounds; ++r) t.send(r + 1, w);
      const double s = seconds_since(start) / rounds;
      std::printf("%s, %s-buffered: %.1f MiB on the wire, sender %.3f s per update (%.2f GB/s of fp32 weights)\n",
                  fp8 ? "fp8" : "raw", buffering(double_buffer == 1), t.last_wire_bytes() / 1048576.0, s,
                  params * 4 / s / 1e9);
      std::fflush(stdout);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  }
  return 0;
}
