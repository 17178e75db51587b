// What the offline experiments (sft: actors/sft.hpp, dpo: actors/dpo.hpp) share: the
// policy and tokenizer they train, the held-out / training split of their data, the
// order in which batches visit the training examples, and the coordinator's calls to
// the store and the trainer. Torch side (in the plugin).
#pragma once

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/experiment.hpp"
#include "actors/offline_trainer_actor_spawn.hpp"
#include "core/error.hpp"
#include "policies/causal_lm.hpp"
#include "policies/sft_data.hpp"
#include "policies/tokenizer.hpp"

namespace troupe {

// The policy an offline experiment trains: the small model of `policy:` with the char
// tokenizer of `tokenizer:`, its weights from `init_from` when that names a checkpoint
// directory (whose config must match the vocabulary). Chat examples are formatted
// plainly (a char model has no chat template).
struct offline_policy {
  std::shared_ptr<const tokenizer> tok;
  causal_lm model{nullptr};
  tokenize_options tokenize;  // chat format and max_length (data.max_length or the context)
};
offline_policy make_offline_policy(const experiment_config& cfg, const std::string& init_from);
// The tokenizer and tokenize options alone (no model), for checking data.
offline_policy make_offline_tokenizer(const experiment_config& cfg);

// The data of each experiment, tokenized: training and held-out examples (at most
// data.eval_examples of those), and how many responses were cut to max_length.
// input_error naming file:line for a bad line or text the tokenizer cannot encode.
struct sft_dataset {
  std::vector<tokenized_example> train, eval;
  std::int64_t truncated = 0;
};
sft_dataset load_sft_dataset(const experiment_config& cfg, const offline_policy& p);
struct preference_dataset {
  std::vector<preference_tokens> train, eval;
  std::int64_t truncated = 0;
};
preference_dataset load_preference_dataset(const experiment_config& cfg, const offline_policy& p);

// The options of an sft trainer as the `sft:` section sets them, for the sft experiment
// and DPO's warm start alike (and as GRPO's warm start reads them): sft.lr and
// sft.microbatch_size over the rest of the trainer section.
offline_trainer_options sft_trainer_options(const experiment_config& cfg, const offline_policy& p);

// Checks shared by both experiments before a run exists: a small policy (policy.path
// empty), exactly one data source, arithmetic options when generating, the trainer
// section, dtype and device. Throws input_error naming the key.
void validate_offline(const experiment_config& cfg);

// The training examples in a different order each epoch (a seeded shuffle), handed
// out batch by batch; the epoch in progress is `epoch()`.
class epoch_sampler {
 public:
  epoch_sampler(std::size_t count, std::uint64_t seed);
  std::vector<std::size_t> next(std::size_t batch_size);
  std::int64_t epoch() const { return epoch_; }

 private:
  void shuffle();
  std::size_t count_;
  std::uint64_t seed_;
  std::vector<std::size_t> order_;
  std::size_t pos_ = 0;
  std::int64_t epoch_ = 0;
};

// The coordinator's side of the actors: a blocking scoped actor on the experiment's
// thread, with request/answer helpers that turn a caf::error into a system_error (or
// input_error for bad input).
class offline_coordinator {
 public:
  explicit offline_coordinator(experiment_context& ctx) : ctx_(ctx), self_(ctx.sys) {}

  template <class T, class... Ts>
  T ask(const caf::actor& who, Ts&&... xs) {
    T out{};
    caf::error err;
    self_->request(who, std::chrono::minutes(30), std::forward<Ts>(xs)...)
        .receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { err = std::move(e); });
    if (err) fail(err);
    return out;
  }

  // Writes `metrics` at `step` to the store (one transaction).
  void log(std::int64_t step, const std::map<std::string, double>& metrics);
  // One optimizer step of an sft trainer (offline_trainer_actor.hpp) on `examples`,
  // laid out as `rows` lays them out; adds sft/tokens_per_s (prompt and response
  // tokens), sft/rows and time/step_s, and logs everything at `step`.
  std::map<std::string, double> sft_step(const caf::actor& trainer, const token_rows& rows, std::int64_t step);
  // Asks `trainer` to save <run>/checkpoints/step_NNNNNN and records it in the store.
  void checkpoint(const caf::actor& trainer, std::int64_t step);
  void stop(const caf::actor& a);

 private:
  [[noreturn]] void fail(const caf::error& err);
  experiment_context& ctx_;
  caf::scoped_actor self_;
};

}  // namespace troupe
