// Generation throughput of troupe's engine: new tokens per second for one batch of
// random prompts, greedy, every sequence forced to the full length (EOS ignored), after
// one warm-up call. Peak resident memory is reported against the weights plus the KV
// cache the batch needs. bench/generation_side_by_side.sh runs this and transformers'
// generate (bench/hf_generate.py) on the same weights in the same run.
//   generate_bench --model DIR --batch 16 --new 64 --prompt 32 [--dtype float32] [--device cpu]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "policies/checkpoint.hpp"
#include "policies/generation.hpp"

using namespace troupe;

int main(int argc, char** argv) {
  std::string model_dir, dtype = "float32", device = "cpu";
  std::int64_t batch = 1, new_tokens = 64, prompt_len = 32;
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    if (f == "--model") model_dir = v;
    else if (f == "--batch") batch = std::stoll(v);
    else if (f == "--new") new_tokens = std::stoll(v);
    else if (f == "--prompt") prompt_len = std::stoll(v);
    else if (f == "--dtype") dtype = v;
    else if (f == "--device") device = v;
    else if (f == "--repeats") repeats = std::stoi(v);
    else {
      std::cerr << "unknown flag " << f << '\n';
      return 2;
    }
  }
  load_options o;
  o.dtype = parse_torch_dtype(dtype);
  o.device = parse_torch_device(device);
  auto model = load_pretrained(model_dir, o);
  const auto& c = model->config();
  generation_engine engine(model, nullptr);

  torch::manual_seed(0);
  std::vector<generation_request> reqs;
  for (std::int64_t b = 0; b < batch; ++b) {
    generation_request r;
    auto ids = torch::randint(0, c.vocab_size, {prompt_len});
    r.prompt.assign(ids.data_ptr<std::int64_t>(), ids.data_ptr<std::int64_t>() + prompt_len);
    r.params.max_new_tokens = new_tokens;
    r.params.temperature = 0;
    r.params.ignore_eos = true;
    reqs.push_back(r);
  }
  engine.generate(reqs);  // warm-up
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto out = engine.generate(reqs);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  double params = 0;
  for (const auto& p : model->parameters()) params += static_cast<double>(p.numel());
  const double elem = o.dtype == torch::kFloat32 ? 4 : 2;
  const double kv = 2.0 * static_cast<double>(c.num_hidden_layers * batch * c.num_key_value_heads * c.head_dim *
                                               (prompt_len + new_tokens)) * elem;
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  if (o.device.is_cuda()) torch::cuda::synchronize();
  std::printf("troupe device=%s batch=%lld new=%lld prompt=%lld dtype=%s: %.1f new tokens/s (best of %d: %.3f s); "
              "peak RSS %.0f MiB, weights %.1f MiB + KV cache %.1f MiB\n",
              device.c_str(), static_cast<long long>(batch), static_cast<long long>(new_tokens),
              static_cast<long long>(prompt_len), dtype.c_str(), static_cast<double>(batch * new_tokens) / best, repeats, best,
              static_cast<double>(ru.ru_maxrss) / 1024.0, params * elem / 1048576.0, kv / 1048576.0);
  return 0;
}
