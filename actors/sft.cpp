#include "actors/sft.hpp"

#include <cstdio>

#include "actors/atoms.hpp"
#include "actors/offline_run.hpp"
#include "core/progress.hpp"
#include "core/stop.hpp"

namespace troupe {

namespace {

// Held-out examples per eval message: each answer is a partial sum, so memory stays
// bounded whatever data.eval_examples is.
constexpr std::size_t eval_chunk = 256;

class sft_run {
 public:
  explicit sft_run(experiment_context& ctx) : ctx_(ctx), cfg_(ctx.config), co_(ctx) {}
  experiment_outcome run();

 private:
  void setup();
  token_rows layout(const std::vector<tokenized_example>& examples) const;
  std::map<std::string, double> train_step(std::int64_t step);
  double evaluate(std::int64_t step);

  experiment_context& ctx_;
  const experiment_config& cfg_;
  offline_coordinator co_;
  offline_policy policy_;
  sft_dataset data_;
  std::unique_ptr<epoch_sampler> sampler_;
  caf::actor trainer_;
};

void sft_run::setup() {
  policy_ = make_offline_policy(cfg_, "");
  data_ = load_sft_dataset(cfg_, policy_);
  ctx_.out << "sft: " << data_.train.size() << " training and " << data_.eval.size() << " held-out examples"
           << (data_.truncated ? ", " + std::to_string(data_.truncated) + " responses cut to data.max_length" : "")
           << (cfg_.data.packing ? ", packed" : ", padded") << '\n';
  sampler_ = std::make_unique<epoch_sampler>(data_.train.size(), static_cast<std::uint64_t>(cfg_.run.seed));
  trainer_ = spawn_offline_trainer_actor(ctx_.sys, policy_.model, sft_trainer_options(cfg_, policy_));
}

token_rows sft_run::layout(const std::vector<tokenized_example>& examples) const {
  return cfg_.data.packing ? pack_examples(examples, policy_.tokenize.max_length) : pad_examples(examples);
}

std::map<std::string, double> sft_run::train_step(std::int64_t step) {
  std::vector<tokenized_example> batch;
  for (auto i : sampler_->next(static_cast<std::size_t>(cfg_.sft.batch_size))) batch.push_back(data_.train[i]);
  return co_.sft_step(trainer_, layout(batch), step);
}

double sft_run::evaluate(std::int64_t step) {
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
  return loss;
}

experiment_outcome sft_run::run() {
  return run_guarded(
    [&] {
      experiment_outcome out;
      setup();
      const auto& s = cfg_.sft;
      const double first = evaluate(0);
      progress bar("sft", std::max<std::int64_t>(1, s.steps), parse_progress_style(cfg_.system.progress), ctx_.out);
      std::int64_t step = 0;
      double eval_loss = first;
      for (; step < s.steps && !stop_requested(); ++step) {
        auto m = train_step(step);
        if (s.eval_every > 0 && (step + 1) % s.eval_every == 0 && step + 1 < s.steps) eval_loss = evaluate(step + 1);
        if (s.checkpoint_every > 0 && (step + 1) % s.checkpoint_every == 0 && step + 1 < s.steps)
          co_.checkpoint(trainer_, step + 1);
        bar.update(step + 1, {{"loss", m["sft/loss"]}, {"eval", eval_loss}, {"tok/s", m["sft/tokens_per_s"]}});
      }
      bar.finish();
      const double last = evaluate(step);
      co_.checkpoint(trainer_, step);
      out.status = stop_requested() ? "stopped" : "finished";
      char losses[64];
      std::snprintf(losses, sizeof(losses), "%.4f -> %.4f", first, last);
      out.message = "sft: " + std::to_string(step) + " steps, held-out loss " + losses;
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
