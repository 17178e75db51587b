#include "experiments/offline/dpo.hpp"

#include <chrono>
#include <cstdio>

#include "actors/protocol/atoms.hpp"
#include "experiments/offline/offline_run.hpp"
#include "core/progress.hpp"
#include "core/stop.hpp"

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::size_t eval_chunk = 128;  // held-out pairs per eval message

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", v);
  return buf;
}

// The held-out accuracy of an evaluation, "?" when there is none.
std::string accuracy(const std::map<std::string, double>& eval) {
  return eval.empty() ? "?" : fixed(eval.at("dpo/eval_accuracy"));
}

class dpo_run {
 public:
  explicit dpo_run(experiment_context& ctx) : ctx_(ctx), cfg_(ctx.config), co_(ctx) {}
  experiment_outcome run();

 private:
  void setup();
  void warm_start();
  std::map<std::string, double> train_step(std::int64_t step);
  void evaluate(std::int64_t step);

  experiment_context& ctx_;
  const experiment_config& cfg_;
  offline_coordinator co_;
  offline_policy policy_;
  preference_dataset data_;
  std::unique_ptr<epoch_sampler> sampler_;
  trainer_actor trainer_;
  // Held-out metrics at step 0 (not run when resumed) and lately; empty until then.
  std::map<std::string, double> first_, last_;
};

void dpo_run::setup() {
  policy_ = make_offline_policy(cfg_, cfg_.dpo.init_from);
  ctx_.out << describe_policy(cfg_.policy, policy_) << '\n';
  data_ = load_preference_dataset(cfg_, policy_);
  ctx_.out << "dpo: " << data_.train.size() << " training and " << data_.eval.size() << " held-out pairs"
           << (data_.truncated ? ", " + std::to_string(data_.truncated) + " responses cut to data.max_length" : "")
           << (cfg_.dpo.init_from.empty() ? "" : ", from " + cfg_.dpo.init_from) << '\n';
  sampler_ = std::make_unique<epoch_sampler>(data_.train.size(), static_cast<std::uint64_t>(cfg_.run.seed));
  if (!ctx_.resume) warm_start();  // resumed, the reference comes from checkpoint 0
  trainer_actor_options o;
  o.objective = trainer_objective::dpo;
  o.trainer = cfg_.trainer;
  o.trainer.microbatch_size = 2 * cfg_.trainer.microbatch_size;  // pairs -> rows
  o.dpo = cfg_.dpo.loss;
  o.pad_id = policy_.pad_id;
  trainer_ = spawn_trainer_actor(ctx_.sys, policy_.model, o);
}

// sft.steps supervised steps on the chosen responses, by a trainer of their own (as
// GRPO's warm start has its own optimizer). The policy is trained in place, so the DPO
// trainer spawned next takes the result as its starting point and its reference.
void dpo_run::warm_start() {
  const auto& s = cfg_.sft;
  if (s.steps == 0) return;
  auto sft = spawn_trainer_actor(ctx_.sys, policy_.model, sft_trainer_options(cfg_, policy_));
  epoch_sampler sampler(data_.train.size(), static_cast<std::uint64_t>(cfg_.run.seed) ^ 0x5f7ULL);
  progress bar("sft", s.steps, parse_progress_style(cfg_.system.progress), ctx_.out);
  for (std::int64_t step = 0; step < s.steps && !stop_requested(); ++step) {
    std::vector<tokenized_example> batch;
    for (auto i : sampler.next(static_cast<std::size_t>(s.batch_size))) batch.push_back(data_.train[i].chosen);
    auto m = co_.sft_step(sft, pad_examples(batch), step);
    bar.update(step + 1, {{"loss", m["sft/loss"]}, {"tok/s", m["sft/tokens_per_s"]}});
  }
  bar.finish();
  co_.stop(sft);  // idle: its last step has been answered
}

std::map<std::string, double> dpo_run::train_step(std::int64_t step) {
  const auto t0 = clock_type::now();
  std::vector<preference_tokens> batch;
  for (auto i : sampler_->next(static_cast<std::size_t>(cfg_.dpo.batch_size))) batch.push_back(data_.train[i]);
  auto rows = pair_examples(batch);
  const auto tokens = rows.tokens();
  auto m = co_.ask<std::map<std::string, double>>(trainer_, train_atom::value, std::move(rows));
  const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
  m["dpo/tokens_per_s"] = static_cast<double>(tokens) / s;
  m["dpo/epoch"] = static_cast<double>(sampler_->epoch());
  m["time/step_s"] = s;
  co_.log(step, m);
  return m;
}

// Each answer is a mean over its chunk's pairs; weighting by the pairs merges them
// into the exact mean over all held-out pairs.
void dpo_run::evaluate(std::int64_t step) {
  std::map<std::string, double> sums;
  double pairs = 0;
  for (std::size_t b = 0; b < data_.eval.size(); b += eval_chunk) {
    const auto e = std::min(data_.eval.size(), b + eval_chunk);
    std::vector<preference_tokens> chunk(data_.eval.begin() + static_cast<std::ptrdiff_t>(b),
                                         data_.eval.begin() + static_cast<std::ptrdiff_t>(e));
    auto m = co_.ask<std::map<std::string, double>>(trainer_, eval_atom::value, pair_examples(chunk));
    for (const auto& [k, v] : m) sums[k] += v * static_cast<double>(e - b);
    pairs += static_cast<double>(e - b);
  }
  for (auto& [k, v] : sums) v /= pairs;
  co_.log(step, sums);
  ctx_.out << "eval at step " << step << ": accuracy " << fixed(sums["dpo/eval_accuracy"]) << ", reward margin "
           << fixed(sums["dpo/eval_reward_margin"]) << ", loss " << fixed(sums["dpo/eval_loss"]) << '\n';
  if (step == 0) first_ = sums;
  last_ = std::move(sums);
}

experiment_outcome dpo_run::run() {
  return run_guarded(
    [&] {
      setup();
      const auto& d = cfg_.dpo;
      // After a warm start the reference is the policy it left: checkpoint 0 keeps it for
      // a resume (without one, the policy built from the config is the reference again).
      const bool warm = cfg_.sft.steps > 0;
      if (warm && !ctx_.resume && stop_requested())  // no checkpoint of half a warm start: a resume starts over
        return experiment_outcome{"stopped", "stopped during the warm-start SFT stage"};
      offline_stages stages;
      stages.train = [&](std::int64_t step) { return train_step(step); };
      stages.figures = [&](const std::map<std::string, double>& m) {
        std::vector<std::pair<std::string, double>> f{
          {"loss", m.at("dpo/loss")}, {"acc", m.at("dpo/accuracy")}, {"margin", m.at("dpo/reward_margin")}};
        if (!last_.empty()) f.push_back({"eval_acc", last_.at("dpo/eval_accuracy")});
        return f;
      };
      stages.evaluate = [&](std::int64_t step) { evaluate(step); };
      stages.checkpoint = [&](std::int64_t step) { co_.checkpoint(trainer_, step); };
      stages.restore = [&](const checkpoint_row& c) {
        const auto step = co_.restore(trainer_, c, warm ? std::optional<std::int64_t>(0) : std::nullopt);
        sampler_->skip(static_cast<std::size_t>(step * d.batch_size));
        return step;
      };
      const auto steps =
        run_offline_loop(ctx_, {"dpo", d.steps, d.eval_every, d.checkpoint_every, /*checkpoint_at_start=*/warm}, stages);
      experiment_outcome out;
      out.status = stop_requested() ? "stopped" : "finished";
      // Resumed: the evaluations an earlier process of the run made.
      for (auto [eval, step] : {std::pair{&first_, std::int64_t{0}}, std::pair{&last_, std::int64_t{-1}}})
        if (eval->empty())
          if (auto v = recorded_metric(ctx_, "dpo/eval_accuracy", step)) (*eval)["dpo/eval_accuracy"] = *v;
      out.message = "dpo: " + std::to_string(steps) + " steps, held-out preference accuracy " +
                    accuracy(first_) + " -> " + accuracy(last_);
      return out;
    },
    [&] { co_.stop(trainer_); });
}

}  // namespace

void validate_dpo(const experiment_config& cfg) {
  validate_offline(cfg);
  if (cfg.data.packing)
    throw input_error("data.packing: the dpo experiment pads each chosen / rejected row; set data.packing: false");
  if (cfg.trainer.microbatch_tokens > 0)
    throw input_error("trainer.microbatch_tokens: dpo keeps each chosen / rejected pair in one microbatch, which "
                      "sorting rows by length would break; set it to 0 and size microbatches with "
                      "trainer.microbatch_size (pairs)");
  try {
    cfg.dpo.loss.validate();
  } catch (const input_error& e) {
    std::string what = e.what();  // "dpo: <option> ..." names the option under dpo.loss
    if (what.rfind("dpo: ", 0) == 0) what = what.substr(5);
    throw input_error("dpo.loss." + what);
  }
  if (!cfg.dpo.init_from.empty()) check_model_dir("dpo.init_from", cfg.dpo.init_from, cfg);
  load_preference_dataset(cfg, make_offline_tokenizer(cfg));  // bad lines fail here, before a run exists
}

experiment_outcome run_dpo(experiment_context& ctx) {
  dpo_run run(ctx);
  return run.run();
}

}  // namespace troupe
