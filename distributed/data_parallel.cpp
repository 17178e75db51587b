#include "distributed/data_parallel.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace troupe {

namespace {

// [begin, end) of each rank's rows: contiguous, the first rows % world one row longer.
std::vector<std::pair<std::size_t, std::size_t>> shard_ranges(std::size_t rows, int world_size, const char* what) {
  if (world_size < 1) throw input_error(std::string(what) + ": world_size must be at least 1");
  const auto world = static_cast<std::size_t>(world_size);
  if (rows < world)
    throw input_error(std::string(what) + ": " + std::to_string(rows) + " rows cannot be split over " +
                      std::to_string(world) +
                      " data-parallel trainer ranks (each needs at least one): raise the batch size or lower the ranks");
  std::vector<std::pair<std::size_t, std::size_t>> out;
  std::size_t begin = 0;
  for (std::size_t k = 0; k < world; ++k) {
    const std::size_t end = begin + rows / world + (k < rows % world ? 1 : 0);
    out.emplace_back(begin, end);
    begin = end;
  }
  return out;
}

template <class V>
void pick(const V& v, const std::vector<std::size_t>& rows, V& out) {
  if (!v.empty())
    for (auto r : rows) out.push_back(v[r]);
}

std::vector<std::size_t> rows_of(std::pair<std::size_t, std::size_t> range) {
  std::vector<std::size_t> rows;
  for (auto r = range.first; r < range.second; ++r) rows.push_back(r);
  return rows;
}

// The rows `rows` of every per-row field, in that order (empty fields stay empty).
rollout_batch take_rows(const rollout_batch& batch, const std::vector<std::size_t>& rows) {
  rollout_batch s;
  pick(batch.prompts, rows, s.prompts);
  pick(batch.completions, rows, s.completions);
  pick(batch.gen_logprobs, rows, s.gen_logprobs);
  pick(batch.advantages, rows, s.advantages);
  pick(batch.versions, rows, s.versions);
  pick(batch.completion_masks, rows, s.completion_masks);
  return s;
}

// Every per-row field has the batch's row count (versions and completion_masks may be empty).
void check_rollout_batch(const rollout_batch& batch) {
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
}

}  // namespace

std::vector<rollout_batch> shard_rollout_batch(const rollout_batch& batch, int world_size) {
  check_rollout_batch(batch);
  std::vector<rollout_batch> shards;
  for (const auto& r : shard_ranges(batch.prompts.size(), world_size, "rollout batch"))
    shards.push_back(take_rows(batch, rows_of(r)));
  return shards;
}

std::vector<rollout_batch> shard_rollout_batch_by_tokens(const rollout_batch& batch, int world_size) {
  check_rollout_batch(batch);
  const std::size_t rows = batch.prompts.size();
  shard_ranges(rows, world_size, "rollout batch");  // the same refusal of too few rows
  const auto world = static_cast<std::size_t>(world_size);
  std::vector<std::size_t> order(rows), tokens(rows);
  for (std::size_t i = 0; i < rows; ++i) {
    order[i] = i;
    tokens[i] = batch.prompts[i].size() + batch.completions[i].size();
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return tokens[a] > tokens[b]; });
  std::vector<std::vector<std::size_t>> owned(world);
  std::vector<std::size_t> load(world, 0);
  for (auto i : order) {
    // An empty rank first (rows >= world, so each gets one), then the lightest.
    const auto k = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    const auto empty = std::find_if(owned.begin(), owned.end(), [](const auto& o) { return o.empty(); });
    const auto to = empty != owned.end() ? static_cast<std::size_t>(empty - owned.begin()) : k;
    owned[to].push_back(i);
    load[to] += tokens[i];
  }
  std::vector<rollout_batch> shards;
  for (auto& shard_rows : owned) {
    std::sort(shard_rows.begin(), shard_rows.end());  // batch order within the shard
    shards.push_back(take_rows(batch, shard_rows));
  }
  return shards;
}

std::vector<sft_batch> shard_sft_batch(const sft_batch& batch, int world_size) {
  if (batch.targets.size() != batch.prompts.size())
    throw input_error("sft batch: " + std::to_string(batch.targets.size()) + " targets for " +
                      std::to_string(batch.prompts.size()) + " prompts");
  std::vector<sft_batch> shards;
  for (const auto& r : shard_ranges(batch.prompts.size(), world_size, "sft batch")) {
    sft_batch s;
    pick(batch.prompts, rows_of(r), s.prompts);
    pick(batch.targets, rows_of(r), s.targets);
    shards.push_back(std::move(s));
  }
  return shards;
}

}  // namespace troupe
