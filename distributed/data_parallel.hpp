// Data-parallel trainer ranks, torch-free side: the options a rank needs to join its
// group, the split of a rollout batch into one shard per rank, and the entry point that
// starts a rank > 0 on a remote worker from a text payload.
//
// How a run uses them (docs/data-parallel.md):
//   - every rank runs a trainer actor (actors/protocol/trainer.hpp) spawned with
//     trainer_actor_options::data_parallel = {rank, world_size, host, port, timeout_s}:
//     rank 0 by the coordinator in its own process, ranks 1..N-1 on workers through
//     spawn_trainer_rank(sys, trainer_rank_payload_text(config_text, options));
//   - each step, the coordinator computes advantages over the whole batch, splits it
//     with shard_rollout_batch and sends shard k to rank k; all ranks take the same
//     update (algorithms/data_parallel.hpp); rank 0's metrics and weights are the run's;
//   - every other message (sft, save, load) goes to every rank too, in the same order.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "actors/protocol/trainer.hpp"
#include "algorithms/data_parallel_options.hpp"

namespace troupe {

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
// config key that is wrong. Implemented in the torch plugin (experiments/grpo/trainer_rank.cpp).
caf::actor spawn_trainer_rank(caf::actor_system& sys, const std::string& payload);

}  // namespace troupe
