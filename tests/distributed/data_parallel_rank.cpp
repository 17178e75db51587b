// One data-parallel trainer rank as a process of its own, for data_parallel_test.cpp:
//   data_parallel_rank PORT RANK WORLD MODE STEPS OUT_PREFIX TIMEOUT_S STALL_AFTER
// Joins a Gloo group on 127.0.0.1:PORT (PORT 0 at rank 0: a reserved port, written to
// fd 3) and trains STEPS GRPO steps of loss MODE (token,
// sequence, token_kl, gspo; data_parallel_fixture.hpp) in fp64 with microbatches of 2 on
// its contiguous shard of each global batch, starting from its own initial weights (seed
// 1 + RANK: the trainer must broadcast rank 0's). Writes OUT_PREFIX.params.pt (the
// policy's parameters) and OUT_PREFIX.metrics (the last step's). MODE "restore" trains 2
// steps in fp32, rank 0 saves a checkpoint, both ranks build fresh trainers (rank 1 from
// other weights), rank 0 loads the checkpoint, both sync_replicas, one more step.
// MODE "nan" is "token" with NaN advantages on rank 1 in step 1. MODE "actor" runs STEPS updates through a trainer actor from spawn_trainer_rank
// (data_parallel_actor_run.hpp) instead.
// STALL_AFTER >= 0: before that step, write "stalled" on fd 3 and sleep (a rank that
// stops answering). Exit 0; 4 for system_error (message on stderr); 3 input_error; 1.
#include <unistd.h>

#include <fstream>
#include <iostream>

#include "algorithms/data_parallel_gloo.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "tests/distributed/data_parallel_actor_run.hpp"

int main(int argc, char** argv) {
  using namespace troupe;
  using namespace troupe::testing;
  if (argc != 9) {
    std::cerr << "usage: data_parallel_rank PORT RANK WORLD MODE STEPS OUT_PREFIX TIMEOUT_S STALL_AFTER\n";
    return 1;
  }
  const std::string mode = argv[4], out = argv[6];
  const std::int64_t steps = std::stoll(argv[5]), stall_after = std::stoll(argv[8]);
  try {
    data_parallel_options o;
    o.port = std::stoi(argv[1]);
    o.rank = std::stoi(argv[2]);
    if (o.port == 0 && o.rank == 0) {  // reserve one and tell the test (on fd 3) for the other ranks
      o.port = reserve_tcp_port();
      const auto text = std::to_string(o.port);
      if (::write(3, text.data(), text.size()) != static_cast<ssize_t>(text.size())) return 1;
      ::close(3);
    }
    o.world_size = std::stoi(argv[3]);
    o.timeout_s = std::stod(argv[7]);
    o.bucket_bytes = 16 << 10;  // many buckets for this tiny model, the embedding alone in one
    if (mode == "actor") {  // through spawn_trainer_rank and the trainer actor
      auto r = dp_actor_run(o, std::stoll(argv[5]));
      torch::save(r.params, out + ".params.pt");
      dp_write_metrics(r.metrics, out + ".metrics");
      return 0;
    }
    auto group = join_data_parallel_group(o);
    const auto [begin, end] = dp_shard(o.rank, o.world_size);
    train_step_result r;
    std::int64_t final_step = 0;
    if (mode == "restore") {
      const std::string ckpt = out + ".ckpt";
      {
        trainer a(dp_model(torch::kFloat32, 1 + static_cast<std::uint64_t>(o.rank)), dp_trainer_config(2), true, group);
        for (std::int64_t s = 0; s < 2; ++s) dp_step(a, "token_kl", s, begin, end);
        if (o.rank == 0) a.save_checkpoint(ckpt);
      }
      // A restart: rank 0 from the run's initial weights (the reference) and the
      // checkpoint, rank 1 from something else and without the checkpoint.
      trainer b(dp_model(torch::kFloat32, o.rank == 0 ? 1 : 7), dp_trainer_config(2), true, group);
      if (o.rank == 0) b.load_checkpoint(ckpt);
      b.sync_replicas();
      r = dp_step(b, "token_kl", 2, begin, end);
      final_step = b.step();
      torch::save(dp_params(b.policy()), out + ".params.pt");
    } else {
      // "nan": the token loss, with NaN advantages on rank 1 in step 1.
      const std::string loss = mode == "nan" ? "token" : mode;
      const bool kl = dp_loss_config(loss).reference_policy_kl_penalty != 0;
      trainer t(dp_model(torch::kFloat64, 1 + static_cast<std::uint64_t>(o.rank)), dp_trainer_config(2), kl, group);
      for (std::int64_t s = 0; s < steps; ++s) {
        if (s == stall_after) {
          if (::write(3, "stalled\n", 8) != 8) return 1;  // to the test
          ::sleep(600);  // the stall itself: a rank that stops answering
        }
        r = dp_step(t, loss, s, begin, end, mode == "nan" && o.rank == 1 && s == 1);
      }
      final_step = t.step();
      torch::save(dp_params(t.policy()), out + ".params.pt");
    }
    r.metrics["step"] = static_cast<double>(final_step);
    dp_write_metrics(r.metrics, out + ".metrics");
    return 0;
  } catch (const system_error& e) {
    std::cerr << e.what() << "\n";
    return 4;
  } catch (const input_error& e) {
    std::cerr << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
