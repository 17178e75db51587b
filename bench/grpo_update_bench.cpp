// GRPO update throughput of troupe's trainer: trained (response) tokens per second of
// train_step with clipped_pg_loss (algorithms/losses.hpp, no KL), AdamW and grad-norm
// clipping, microbatched, on random sequences of one length with fixed random
// advantages. lp_old is scored once before timing (as the trainer actor does per
// batch). One warm-up step, then the best of --repeats, in wall time and in CPU time of
// the process (steadier on a shared machine). bench/grpo_update_pytorch.py
// runs the same update in plain PyTorch + transformers on the same weights and batch
// (the printed losses agree); run the two one after the other.
// --lengths varied gives the rows the spread of response lengths a GRPO batch has:
// row i answers in 16 + (61 i mod 81) tokens (16 .. 96, scrambled), right-padded; the
// figure counts real response tokens only. --microbatch-tokens N turns on the trainer's
// dynamic batching (trainer.microbatch_tokens).
//   grpo_update_bench --model DIR --batch 8 --seq 128 --prompt 32 --microbatch 4
//   grpo_update_bench --model DIR --batch 16 --lengths varied --microbatch-tokens 512
#include <time.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "policies/checkpoint.hpp"
#include "algorithms/trainer.hpp"

using namespace troupe;

// CPU time of the whole process (all threads): on a machine shared with other work the
// wall time follows the load, the CPU time much less (exactly so with one thread).
static double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

int main(int argc, char** argv) {
  std::string model_dir;
  std::int64_t batch = 8, seq = 128, prompt = 32, microbatch = 4;
  std::int64_t microbatch_tokens = 0;
  std::string lengths = "equal";
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    if (f == "--model") model_dir = v;
    else if (f == "--batch") batch = std::stoll(v);
    else if (f == "--seq") seq = std::stoll(v);
    else if (f == "--prompt") prompt = std::stoll(v);
    else if (f == "--microbatch") microbatch = std::stoll(v);
    else if (f == "--repeats") repeats = std::stoi(v);
    else if (f == "--microbatch-tokens") microbatch_tokens = std::stoll(v);
    else if (f == "--lengths" && (v == "equal" || v == "varied")) lengths = v;
    else {
      std::cerr << "unknown flag " << f << '\n';
      return 2;
    }
  }
  auto model = load_pretrained(model_dir);
  trainer_section s;
  s.lr = 1e-6;
  s.microbatch_size = microbatch;
  s.microbatch_tokens = microbatch_tokens;
  s.max_grad_norm = 1.0;
  trainer t(model, s, /*with_reference=*/false);

  torch::manual_seed(0);
  train_batch b;
  b.input_ids = torch::randint(0, model->config().vocab_size, {batch, seq});
  b.attention_mask = torch::ones({batch, seq}, torch::kInt64);
  b.response_mask = torch::zeros({batch, seq});
  b.response_mask.narrow(1, prompt, seq - prompt).fill_(1);
  if (lengths == "varied") {
    for (std::int64_t i = 0; i < batch; ++i) {
      const auto len = std::min(seq, prompt + 16 + (61 * i) % 81);
      b.input_ids[i].narrow(0, len, seq - len).fill_(0);
      b.attention_mask[i].narrow(0, len, seq - len).fill_(0);
      b.response_mask[i].narrow(0, len, seq - len).fill_(0);
    }
    const auto longest = b.attention_mask.sum(1).max().item<std::int64_t>();  // the batch is padded to its longest row
    b = b.slice(0, batch, longest);
  }
  b.per_sequence["advantages"] = torch::randn({batch});
  b.per_token["old_logprobs"] = t.policy_logprobs(b);

  clipped_pg_config pg;
  pg.reference_policy_kl_penalty = 0;
  auto loss = [&](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    pg_inputs in;
    in.lp = token_logprobs(policy, mb);
    in.lp_old = mb.extra("old_logprobs");
    in.advantages = mb.extra("advantages");
    in.mask = mb.response_mask;
    return clipped_pg_loss(pg, in, global);
  };
  t.train_step(b, loss);  // warm-up
  double best = 1e30, best_cpu = 1e30, last_loss = 0, padding = 0;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpu_seconds();
    auto r = t.train_step(b, loss);
    best_cpu = std::min(best_cpu, cpu_seconds() - c0);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    last_loss = r.metrics.at("train/loss");
    padding = r.metrics.at("train/padding_fraction");
  }
  const auto tokens = b.response_mask.sum().item<double>();
  std::printf("troupe batch=%lld seq=%lld prompt=%lld microbatch=%lld microbatch_tokens=%lld lengths=%s threads=%d: "
              "%.1f trained tokens/s (best of %d: %.3f s/step; %.1f tokens per CPU-second; loss %.6f; "
              "%.0f tokens trained, padding %.3f)\n",
              static_cast<long long>(batch), static_cast<long long>(seq), static_cast<long long>(prompt),
              static_cast<long long>(microbatch), static_cast<long long>(microbatch_tokens), lengths.c_str(),
              torch::get_num_threads(), tokens / best, repeats, best, tokens / best_cpu, last_loss, tokens,
              padding);
  return 0;
}
