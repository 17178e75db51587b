// What the offline experiments (sft: experiments/offline/sft.hpp, dpo: experiments/offline/dpo.hpp, distill:
// experiments/offline/distill.hpp) share: the policy and tokenizer they train, the held-out /
// training split of their data, the order in which batches visit the training
// examples, their loop (new or resumed), and the coordinator's calls to the store and
// the trainer. Torch side (in the plugin).
#pragma once

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "experiments/experiment.hpp"
#include "actors/policy/trainer_actor.hpp"
#include "experiments/setup/policy_setup.hpp"
#include "core/error.hpp"
#include "policies/causal_lm.hpp"
#include "algorithms/sft_data.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe {

// The policy an offline experiment trains: the policy of `policy:` (experiments/setup/policy_setup.hpp:
// the small model over the char tokenizer, or a Hugging Face directory with its
// tokenizer and chat format), its weights from `init_from` instead when that names a
// checkpoint directory (whose vocabulary must be the policy's), and how its examples
// become ids: in its chat format, at most data.max_length tokens (0: its context).
struct offline_policy : policy_setup {
  tokenize_options tokenize;
};
offline_policy make_offline_policy(const experiment_config& cfg, const std::string& init_from);
// The tokenizer, chat format and tokenize options alone (no weights), for checking data.
offline_policy make_offline_tokenizer(const experiment_config& cfg);
// Checks that `dir` (the value of config key `key`: dpo.init_from, distill.teacher, ...)
// is a model directory whose vocabulary is the policy's; input_error naming both.
void check_model_dir(const std::string& key, const std::string& dir, const experiment_config& cfg);

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
trainer_actor_options sft_trainer_options(const experiment_config& cfg, const offline_policy& p);

// Checks shared by sft and dpo before a run exists: the policy (validate_policy),
// exactly one data source, arithmetic options when generating, data.max_length within
// the policy's context, the trainer section. Throws input_error naming the key.
void validate_offline(const experiment_config& cfg);

// The training examples in a different order each epoch (a seeded shuffle), handed
// out batch by batch; the epoch in progress is `epoch()`.
class epoch_sampler {
 public:
  epoch_sampler(std::size_t count, std::uint64_t seed);
  std::vector<std::size_t> next(std::size_t batch_size);
  // Moves on as `draws` examples' worth of next() would (a resumed run's data cursor:
  // the order is a function of the seed and the epoch, so no state needs saving).
  void skip(std::size_t draws);
  std::int64_t epoch() const { return epoch_; }

 private:
  void shuffle();
  std::size_t count_;
  std::uint64_t seed_;
  std::vector<std::size_t> order_;
  std::size_t pos_ = 0;
  std::int64_t epoch_ = 0;
};

// The loop every offline experiment runs, by its stages:
//   new run:  evaluate(0) (and checkpoint(0) with checkpoint_at_start), then
//   resumed:  restore(the checkpoint ctx.resume names), which answers its step;
//   then train(step) for the remaining steps, with evaluate and checkpoint after the
//   steps where they are due (due() of experiments/experiment.hpp), and at the end the
//   evaluation and checkpoint of the last step done unless it has them already. A stop
//   request ends it after the step in progress. The progress bar `stage` shows
//   figures(train's answer) after each step. Answers the steps done.
struct offline_schedule {
  std::string stage;  // "sft", "dpo", "distill"
  std::int64_t steps = 0, eval_every = 0, checkpoint_every = 0;
  bool checkpoint_at_start = false;  // a checkpoint of step 0 (dpo: its reference after a warm start)
};
struct offline_stages {
  std::function<std::map<std::string, double>(std::int64_t step)> train;
  std::function<std::vector<std::pair<std::string, double>>(const std::map<std::string, double>& metrics)> figures;
  std::function<void(std::int64_t step)> evaluate, checkpoint;
  std::function<std::int64_t(const checkpoint_row& c)> restore;
};
std::int64_t run_offline_loop(experiment_context& ctx, const offline_schedule& schedule, const offline_stages& stages);

// The value the run's store holds for `name` at `step`, or its last one for step -1
// (nullopt when none): a resumed run's summary uses the evaluations an earlier process
// of the run recorded (the one at step 0, and the last when it resumed at the very end).
std::optional<double> recorded_metric(const experiment_context& ctx, const std::string& name, std::int64_t step);

// The coordinator's side of the actors: a blocking scoped actor on the experiment's
// thread, with request/answer helpers that turn a caf::error into a system_error (or
// input_error for bad input).
class offline_coordinator {
 public:
  explicit offline_coordinator(experiment_context& ctx) : ctx_(ctx), self_(ctx.sys) {}

  // `who`: a typed actor (actors/protocol/), whose answer to xs... must be a T or this
  // does not compile, or the untyped store actor.
  template <class T, class Handle, class... Ts>
  T ask(const Handle& who, Ts&&... xs) {
    T out{};
    caf::error err;
    self_->request(who, std::chrono::minutes(30), std::forward<Ts>(xs)...)
        .receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { err = std::move(e); });
    if (err) fail(err);
    return out;
  }

  // Writes `metrics` at `step` to the store (one transaction).
  void log(std::int64_t step, const std::map<std::string, double>& metrics);
  // One optimizer step of an sft trainer (trainer_actor.hpp) on `examples`,
  // laid out as `rows` lays them out; adds sft/tokens_per_s (prompt and response
  // tokens), sft/rows and time/step_s, and logs everything at `step`.
  std::map<std::string, double> sft_step(const trainer_actor& trainer, const token_rows& rows, std::int64_t step);
  // Asks `trainer` to save <run>/checkpoints/step_NNNNNN (with a Hugging Face policy's
  // tokenizer files: copy_tokenizer_files) and records it in the store.
  void checkpoint(const trainer_actor& trainer, std::int64_t step);
  // Resume: `trainer` takes the weights, optimizer and RNG state and the step of
  // checkpoint `c` (trainer_actor.hpp's load), and, when `reference_step` is
  // given, its frozen reference the weights of that step's checkpoint. Answers the step;
  // system_error when the checkpoint holds another step than the store says.
  std::int64_t restore(const trainer_actor& trainer, const checkpoint_row& c, std::optional<std::int64_t> reference_step = {});
  template <class Handle>
  void stop(const Handle& a) {
    if (a) self_->send_exit(a, caf::exit_reason::user_shutdown);
  }

 private:
  [[noreturn]] void fail(const caf::error& err);
  experiment_context& ctx_;
  caf::scoped_actor self_;
};

}  // namespace troupe
