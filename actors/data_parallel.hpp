// Data-parallel trainer ranks, torch-free side: the options a rank needs to join its
// group, the split of a rollout batch into one shard per rank, and the entry point that
// starts a rank > 0 on a remote worker from a text payload.
//
// How a run uses them (docs/data-parallel.md):
//   - every rank runs a trainer actor (actors/trainer_actor.hpp) spawned with
//     trainer_actor_options::data_parallel = {rank, world_size, host, port, timeout_s}:
//     rank 0 by the coordinator in its own process, ranks 1..N-1 on workers through
//     spawn_trainer_rank(sys, trainer_rank_payload_text(config_text, options));
//   - each step, the coordinator computes advantages over the whole batch, splits it
//     with shard_rollout_batch and sends shard k to rank k; all ranks take the same
//     update (policies/data_parallel.hpp); rank 0's metrics and weights are the run's;
//   - every other message (sft, save, load) goes to every rank too, in the same order.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "actors/trainer_actor.hpp"
#include "core/config_binding.hpp"

namespace troupe {

// One rank's place in the group. Rank 0 serves the rendezvous (a c10d TCPStore) on
// host:port; every rank connects to it. Use a port of its own (not the weight
// transport's). A rank that is lost or does not arrive within timeout_s makes the
// others' step fail with a system_error naming the collective.
struct data_parallel_options {
  int rank = 0;
  int world_size = 1;  // 1: not data parallel
  std::string host = "127.0.0.1";
  int port = 29610;
  double timeout_s = 300;  // rendezvous and each collective
  std::int64_t bucket_bytes = std::int64_t{25} << 20;  // gradients are all-reduced in flat buckets of this size

  bool enabled() const { return world_size > 1; }
  // Throws input_error naming `path` and the key for a rank outside [0, world_size),
  // a bad port, timeout or bucket size.
  void validate(const std::string& path) const;

  template <class V>
  void describe(V& v) {
    v.field("rank", rank, "this trainer's rank; 0 serves the rendezvous and reports metrics", in_range<int>(0, 65535));
    v.field("world_size", world_size, "trainer ranks in the group; 1 trains alone", in_range<int>(1, 65536));
    v.field("host", host, "rank 0's address (rendezvous and Gloo)");
    v.field("port", port, "rank 0's rendezvous port", in_range<int>(1, 65535));
    v.field("timeout_s", timeout_s, "a rank that does not arrive within this many seconds fails the step",
            greater_than(0.0));
    v.field("bucket_bytes", bucket_bytes, "gradients are all-reduced in flat buckets of this many bytes",
            in_range<std::int64_t>(1, std::int64_t{1} << 40));
  }
};

// Splits `batch` into `world_size` shards of contiguous rows, in order: the first
// rows % world_size shards get one row more. Throws input_error when the batch has fewer
// rows than ranks (a rank cannot train on nothing) or its per-row fields disagree in
// length (empty versions / completion_masks stay empty in every shard).
std::vector<rollout_batch> shard_rollout_batch(const rollout_batch& batch, int world_size);
// The same checks, but shards balanced by tokens (prompt + completion) for dynamic
// batching (trainer.microbatch_tokens), where a rank's time follows its tokens: rows
// taken longest first each go to the rank with the fewest tokens so far (the lowest
// rank on a tie), and keep their batch order within a shard. Every rank gets at least
// one row, and no two ranks' token sums differ by more than the longest row.
std::vector<rollout_batch> shard_rollout_batch_by_tokens(const rollout_batch& batch, int world_size);
// The same for the SFT warm start's batches.
std::vector<sft_batch> shard_sft_batch(const sft_batch& batch, int world_size);

// What spawn_trainer_rank reads: the experiment config as YAML text (as `troupe run`
// resolved it, e.g. the run directory's config.yaml) and the rank's options, as a JSON
// document {"config": "...", "data_parallel": {rank, world_size, host, port, timeout_s,
// bucket_bytes}}.
std::string trainer_rank_payload_text(const std::string& config_text, const data_parallel_options& options);

// On a worker (the remote kind "trainer_rank"): builds the policy the config describes
// and spawns a data-parallel trainer actor for the payload's rank, with the same
// trainer options rank 0 has. The policy's own initial weights do not matter: rank 0's
// are broadcast when the trainer starts. Throws input_error naming the payload key or
// config key that is wrong. Implemented in the torch plugin (actors/trainer_rank.cpp).
caf::actor spawn_trainer_rank(caf::actor_system& sys, const std::string& payload);

}  // namespace troupe
