// Data-parallel cost on this machine: the gradient all-reduce of the ~100M model
// (random Llama shape: hidden 768, 12 layers, 12 heads, 4 kv heads, vocab 32000, tied
// embeddings; fp32 gradients) across 2 processes on 127.0.0.1 over c10d Gloo, against
// one rank's GRPO step (train_step with clipped_pg_loss, AdamW, clip 1.0; batch 8 x 128
// tokens, 32 prompt, microbatch 4, as grpo_update_bench) and a 2-rank data-parallel step
// (4 rows each). Rank 1 is this binary started again with --rank.
//   data_parallel_bench [--repeats 3] [--bucket-mib 25]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "algorithms/data_parallel_gloo.hpp"
#include "policies/model_config.hpp"
#include "algorithms/trainer.hpp"

extern char** environ;

using namespace troupe;

namespace {

constexpr std::int64_t batch = 8, seq = 128, prompt = 32, microbatch = 4;

causal_lm bench_model() {
  policy_section p;
  p.hidden_size = 768;
  p.intermediate_size = 2048;
  p.num_hidden_layers = 12;
  p.num_attention_heads = 12;
  p.num_key_value_heads = 4;
  p.max_position_embeddings = 2048;
  p.tie_word_embeddings = true;
  causal_lm m(small_model_config(p, 32000));
  m->init_weights(0);
  return m;
}

train_batch bench_batch(std::int64_t begin, std::int64_t end) {
  torch::manual_seed(0);
  train_batch b;
  b.input_ids = torch::randint(0, 32000, {batch, seq});
  b.attention_mask = torch::ones({batch, seq}, torch::kInt64);
  b.response_mask = torch::zeros({batch, seq});
  b.response_mask.narrow(1, prompt, seq - prompt).fill_(1);
  b.per_sequence["advantages"] = torch::randn({batch});
  return b.slice(begin, end);
}

train_step_result grpo_step(trainer& t, train_batch b) {
  b.per_token["old_logprobs"] = t.policy_logprobs(b);
  clipped_pg_config pg;
  pg.reference_policy_kl_penalty = 0;
  return t.train_step(b, [pg](causal_lm& policy, const train_batch& mb, const batch_totals& global) {
    pg_inputs in;
    in.lp = token_logprobs(policy, mb);
    in.lp_old = mb.extra("old_logprobs");
    in.advantages = mb.extra("advantages");
    in.mask = mb.response_mask;
    return clipped_pg_loss(pg, in, global);
  });
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

trainer_section bench_trainer() {
  trainer_section s;
  s.lr = 1e-6;
  s.microbatch_size = microbatch;
  s.max_grad_norm = 1.0;
  return s;
}

// Both ranks: `repeats` all-reduces of gradient-shaped tensors, then `repeats` 2-rank
// steps. Rank 0 prints.
void two_ranks(int rank, int port, int repeats, std::int64_t bucket) {
  data_parallel_options o;
  o.rank = rank;
  o.world_size = 2;
  o.port = port;
  o.bucket_bytes = bucket;
  auto group = join_data_parallel_group(o);
  auto model = bench_model();
  std::vector<torch::Tensor> grads;
  std::int64_t bytes = 0;
  for (auto& p : model->parameters()) {
    grads.push_back(torch::randn_like(p));
    bytes += p.numel() * 4;
  }
  double best_reduce = 1e30;
  for (int i = 0; i < repeats + 1; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    group->all_reduce_sum(grads, "gradients");
    if (i > 0) best_reduce = std::min(best_reduce, seconds_since(t0));
  }
  trainer t(model, bench_trainer(), false, group);
  const auto half = batch / 2;
  auto shard = bench_batch(rank * half, (rank + 1) * half);
  grpo_step(t, shard);  // warm-up
  double best_step = 1e30;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    grpo_step(t, shard);
    best_step = std::min(best_step, seconds_since(t0));
  }
  if (rank == 0) {
    std::printf("all-reduce of %.1f MiB fp32 gradients (%zu tensors, buckets of %lld MiB), 2 processes: %.3f s "
                "(%.0f MiB/s of gradient)\n",
                static_cast<double>(bytes) / (1 << 20), grads.size(), static_cast<long long>(bucket >> 20), best_reduce,
                static_cast<double>(bytes) / (1 << 20) / best_reduce);
    std::printf("2-rank data-parallel step (4 rows each): %.3f s/step (best of %d)\n", best_step, repeats);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int repeats = 3, rank = 0, port = 29655;
  std::int64_t bucket = std::int64_t{25} << 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    if (f == "--repeats") repeats = std::stoi(v);
    else if (f == "--bucket-mib") bucket = std::stoll(v) << 20;
    else if (f == "--rank") rank = std::stoi(v);
    else if (f == "--port") port = std::stoi(v);
    else {
      std::cerr << "unknown flag " << f << '\n';
      return 2;
    }
  }
  try {
    if (rank == 1) {
      two_ranks(1, port, repeats, bucket);
      return 0;
    }
    {
      auto model = bench_model();
      std::int64_t n = 0;
      for (auto& p : model->parameters()) n += p.numel();
      trainer t(model, bench_trainer(), false);
      auto b = bench_batch(0, batch);
      grpo_step(t, b);  // warm-up
      double best = 1e30;
      for (int i = 0; i < repeats; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        grpo_step(t, b);
        best = std::min(best, seconds_since(t0));
      }
      std::printf("model %.1fM parameters, threads %d\none-rank GRPO step, batch %lld x %lld: %.3f s/step (best of %d)\n",
                  static_cast<double>(n) / 1e6, torch::get_num_threads(), static_cast<long long>(batch),
                  static_cast<long long>(seq), best, repeats);
    }
    std::vector<std::string> args = {argv[0], "--rank", "1", "--port", std::to_string(port), "--repeats",
                                     std::to_string(repeats), "--bucket-mib", std::to_string(bucket >> 20)};
    std::vector<char*> av;
    for (auto& a : args) av.push_back(a.data());
    av.push_back(nullptr);
    pid_t pid = -1;
    if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, av.data(), environ) != 0) {
      std::cerr << "cannot start rank 1\n";
      return 1;
    }
    two_ranks(0, port, repeats, bucket);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  } catch (const std::exception& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
}
