#include "actors/data_parallel.hpp"

#include "core/error.hpp"

namespace troupe {

void data_parallel_options::validate(const std::string& path) const {
  auto key = [&](const char* k) { return path + "." + k; };
  if (world_size < 1) throw input_error(key("world_size") + " must be at least 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw input_error(key("rank") + " = " + std::to_string(rank) + " is outside [0, " + key("world_size") + " = " +
                      std::to_string(world_size) + ")");
  if (port < 1 || port > 65535) throw input_error(key("port") + " must be in 1..65535, got " + std::to_string(port));
  if (!(timeout_s > 0)) throw input_error(key("timeout_s") + " must be > 0");
  if (bucket_bytes < 1) throw input_error(key("bucket_bytes") + " must be at least 1");
}

std::vector<rollout_batch> shard_rollout_batch(const rollout_batch& batch, int world_size) {
  if (world_size < 1) throw input_error("shard_rollout_batch: world_size must be at least 1");
  const std::size_t rows = batch.prompts.size();
  auto check = [&](std::size_t n, const char* name, bool may_be_empty) {
    if (n != rows && !(may_be_empty && n == 0))
      throw input_error(std::string("rollout batch: ") + name + " has " + std::to_string(n) + " rows, prompts " +
                        std::to_string(rows));
  };
  check(batch.completions.size(), "completions", false);
  check(batch.gen_logprobs.size(), "gen_logprobs", false);
  check(batch.advantages.size(), "advantages", false);
  check(batch.versions.size(), "versions", true);
  check(batch.completion_masks.size(), "completion_masks", true);
  const auto world = static_cast<std::size_t>(world_size);
  if (rows < world)
    throw input_error("rollout batch: " + std::to_string(rows) + " rows cannot be split over " + std::to_string(world) +
                      " data-parallel trainer ranks (each needs at least one): raise the batch size or lower the ranks");
  std::vector<rollout_batch> shards(world);
  std::size_t begin = 0;
  for (std::size_t k = 0; k < world; ++k) {
    const std::size_t end = begin + rows / world + (k < rows % world ? 1 : 0);
    auto cut = [&](const auto& v, auto& out) {
      if (!v.empty()) out.assign(v.begin() + static_cast<std::ptrdiff_t>(begin), v.begin() + static_cast<std::ptrdiff_t>(end));
    };
    auto& s = shards[k];
    cut(batch.prompts, s.prompts);
    cut(batch.completions, s.completions);
    cut(batch.gen_logprobs, s.gen_logprobs);
    cut(batch.advantages, s.advantages);
    cut(batch.versions, s.versions);
    cut(batch.completion_masks, s.completion_masks);
    begin = end;
  }
  return shards;
}

}  // namespace troupe
