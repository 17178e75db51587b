#include "experiments/offline/sft.hpp"

#include <cstdio>
#include <optional>

#include "actors/protocol/atoms.hpp"
#include "experiments/offline/offline_run.hpp"
#include "core/stop.hpp"

namespace troupe {

namespace {

// Held-out examples per eval message: each answer is a partial sum, so memory stays
// bounded whatever data.eval_examples is.
constexpr std::size_t eval_chunk = 256;

// "first -> last", "?" for one nobody recorded (a resumed run takes the evaluations
// its earlier process made from the store: recorded_metric).
std::string losses(std::optional<double> first, std::optional<double> last) {
  auto text = [](std::optional<double> v) {
    if (!v) return std::string("?");
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.4f", *v);
    return std::string(buf);
  };
  return text(first) + " -> " + text(last);
}

class sft_run {
 public:
  explicit sft_run(experiment_context& ctx) : ctx_(ctx), cfg_(ctx.config), co_(ctx) {}
  experiment_outcome run();

 private:
  void setup();
  token_rows layout(const std::vector<tokenized_example>& examples) const;
  std::map<std::string, double> train_step(std::int64_t step);
  void evaluate(std::int64_t step);

  experiment_context& ctx_;
  const experiment_config& cfg_;
  offline_coordinator co_;
  offline_policy policy_;
  sft_dataset data_;
  std::unique_ptr<epoch_sampler> sampler_;
  trainer_actor trainer_;
  std::optional<double> first_, last_;  // held-out loss at step 0 and lately (resumed: from the store)
};

void sft_run::setup() {
  policy_ = make_offline_policy(cfg_, "");
  ctx_.out << describe_policy(cfg_.policy, policy_) << '\n';
  data_ = load_sft_dataset(cfg_, policy_);
  ctx_.out << "sft: " << data_.train.size() << " training and " << data_.eval.size() << " held-out examples"
           << (data_.truncated ? ", " + std::to_string(data_.truncated) + " responses cut to data.max_length" : "")
           << (cfg_.data.packing ? ", packed" : ", padded") << '\n';
  sampler_ = std::make_unique<epoch_sampler>(data_.train.size(), static_cast<std::uint64_t>(cfg_.run.seed));
  trainer_ = spawn_trainer_actor(ctx_.sys, policy_.model, sft_trainer_options(cfg_, policy_));
}

token_rows sft_run::layout(const std::vector<tokenized_example>& examples) const {
  return cfg_.data.packing ? pack_examples(examples, policy_.tokenize.max_length) : pad_examples(examples);
}

std::map<std::string, double> sft_run::train_step(std::int64_t step) {
  std::vector<tokenized_example> batch;
  for (auto i : sampler_->next(static_cast<std::size_t>(cfg_.sft.batch_size))) batch.push_back(data_.train[i]);
  return co_.sft_step(trainer_, layout(batch), step);
}

void sft_run::evaluate(std::int64_t step) {
  double sum = 0, tokens = 0;
  for (std::size_t b = 0; b < data_.eval.size(); b += eval_chunk) {
    std::vector<tokenized_example> chunk(data_.eval.begin() + static_cast<std::ptrdiff_t>(b),
                                         data_.eval.begin() + static_cast<std::ptrdiff_t>(std::min(data_.eval.size(), b + eval_chunk)));
    auto m = co_.ask<std::map<std::string, double>>(trainer_, eval_atom::value, layout(chunk));
    sum += m.at("nll_sum");
    tokens += m.at("tokens");
  }
  const double loss = tokens > 0 ? sum / tokens : 0.0;
  co_.log(step, {{"sft/eval_loss", loss}});
  ctx_.out << "eval at step " << step << ": sft/eval_loss " << loss << '\n';
  if (step == 0) first_ = loss;
  last_ = loss;
}

experiment_outcome sft_run::run() {
  return run_guarded(
    [&] {
      setup();
      const auto& s = cfg_.sft;
      offline_stages stages;
      stages.train = [&](std::int64_t step) { return train_step(step); };
      stages.figures = [&](const std::map<std::string, double>& m) {
        std::vector<std::pair<std::string, double>> f{{"loss", m.at("sft/loss")}};
        if (last_) f.push_back({"eval", *last_});
        f.push_back({"tok/s", m.at("sft/tokens_per_s")});
        return f;
      };
      stages.evaluate = [&](std::int64_t step) { evaluate(step); };
      stages.checkpoint = [&](std::int64_t step) { co_.checkpoint(trainer_, step); };
      // The data cursor is a function of the step: step s drew batch_size examples each.
      stages.restore = [&](const checkpoint_row& c) {
        const auto step = co_.restore(trainer_, c);
        sampler_->skip(static_cast<std::size_t>(step * s.batch_size));
        return step;
      };
      const auto steps = run_offline_loop(ctx_, {"sft", s.steps, s.eval_every, s.checkpoint_every}, stages);
      experiment_outcome out;
      out.status = stop_requested() ? "stopped" : "finished";
      if (!first_) first_ = recorded_metric(ctx_, "sft/eval_loss", 0);  // resumed: evaluated by an earlier process
      if (!last_) last_ = recorded_metric(ctx_, "sft/eval_loss", -1);
      out.message = "sft: " + std::to_string(steps) + " steps, held-out loss " + losses(first_, last_);
      return out;
    },
    [&] { co_.stop(trainer_); });
}

}  // namespace

void validate_sft(const experiment_config& cfg) {
  validate_offline(cfg);
  load_sft_dataset(cfg, make_offline_tokenizer(cfg));  // bad lines fail here, before a run exists
}

experiment_outcome run_sft(experiment_context& ctx) {
  sft_run run(ctx);
  return run.run();
}

}  // namespace troupe
