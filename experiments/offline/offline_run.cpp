#include "experiments/offline/offline_run.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "core/hash.hpp"
#include "core/progress.hpp"
#include "core/run_dir.hpp"
#include "core/store.hpp"
#include "core/stop.hpp"
#include "environments/datasets.hpp"
#include "policies/checkpoint.hpp"

namespace troupe {

namespace {

// Examples of one side (train or eval) from the configured source.
template <class Example, class Read, class Generate>
std::vector<Example> examples_of(const experiment_config& cfg, split s, Read&& read, Generate&& generate) {
  const auto& d = cfg.data;
  const auto seed = static_cast<std::uint64_t>(cfg.run.seed);
  if (d.generate == "arithmetic") {
    const auto opts = arithmetic_options::parse(cfg.env.options);
    return generate(opts, seed, s, s == split::train ? d.train_examples : d.eval_examples);
  }
  if (!d.eval_path.empty()) {
    auto all = read(s == split::train ? d.path : d.eval_path);
    if (s == split::eval && static_cast<std::int64_t>(all.size()) > d.eval_examples)
      all.resize(static_cast<std::size_t>(d.eval_examples));
    return all;
  }
  auto all = read(d.path);
  const auto parts = split_by_hash(all.size(), d.eval_fraction, seed);
  std::vector<Example> out;
  for (auto i : s == split::train ? parts.train : parts.eval) {
    if (s == split::eval && static_cast<std::int64_t>(out.size()) >= d.eval_examples) break;
    out.push_back(std::move(all[i]));
  }
  if (out.empty())
    throw input_error("data: " + d.path + " leaves no " + (s == split::train ? "training" : "held-out") +
                      " examples with data.eval_fraction = " + format_double(d.eval_fraction) +
                      (s == split::eval ? ": raise it or give data.eval_path" : ": lower it"));
  return out;
}

}  // namespace

namespace {

// `base` with how its examples become ids.
offline_policy with_tokenize(const experiment_config& cfg, policy_setup base) {
  offline_policy p;
  static_cast<policy_setup&>(p) = std::move(base);
  p.tokenize.format = p.chat;
  p.tokenize.max_length = cfg.data.max_length > 0 ? cfg.data.max_length : p.config.max_position_embeddings;
  return p;
}

}  // namespace

offline_policy make_offline_tokenizer(const experiment_config& cfg) { return with_tokenize(cfg, load_policy_tokenizer(cfg)); }

namespace {

// A model directory that is missing but names a run's checkpoint (RUNS/NAME/checkpoints/
// step_N): which run is missing, and the command that makes it, when the header of the
// config (its leading comment lines) gives one with run.name=NAME.
std::string missing_run_hint(const std::string& dir, const std::string& config_file) {
  namespace fs = std::filesystem;
  const fs::path step(dir);
  const fs::path checkpoints = step.parent_path();
  if (step.filename().string().rfind("step_", 0) != 0 || checkpoints.filename() != "checkpoints") return "";
  const fs::path run = checkpoints.parent_path();
  std::error_code ec;
  std::string out = ": it is checkpoint " + step.filename().string() + " of the run " + run.string() +
                    (fs::is_directory(run, ec) ? ", which has not saved it" : ", which does not exist yet") +
                    "; train that run first";
  std::ifstream in(config_file);
  std::string line;
  while (std::getline(in, line) && line.rfind('#', 0) == 0) {
    const auto at = line.find("troupe run ");
    if (at != std::string::npos && line.find("run.name=" + run.filename().string()) != std::string::npos) {
      line.erase(line.find_last_not_of(" \t\r") + 1);
      return out + ", as " + config_file + " says: " + line.substr(at);
    }
  }
  return out;
}

}  // namespace

void check_model_dir(const std::string& key, const std::string& dir, const experiment_config& cfg) {
  std::error_code ec;
  const auto config = std::filesystem::path(dir) / "config.json";
  if (!std::filesystem::is_regular_file(config, ec))
    throw input_error(key + ": '" + dir + "' is not a model directory (no config.json)" +
                      missing_run_hint(dir, cfg.source));
  const auto vocab = read_model_config(config.string()).vocab_size;
  const auto want = load_policy_tokenizer(cfg).config.vocab_size;
  if (vocab != want)
    throw input_error(key + ": " + dir + ": the checkpoint's vocabulary has " + std::to_string(vocab) + " ids, " +
                      (cfg.policy.path.empty()
                         ? "the tokenizer of tokenizer.alphabet " + std::to_string(want) +
                             ": use the alphabet it was trained with"
                         : "the model of policy.path '" + cfg.policy.path + "' " + std::to_string(want) +
                             ": it must share the policy's tokenizer"));
}

offline_policy make_offline_policy(const experiment_config& cfg, const std::string& init_from) {
  if (init_from.empty()) return with_tokenize(cfg, load_policy(cfg));
  auto p = make_offline_tokenizer(cfg);  // the experiment's validate has checked init_from (check_model_dir)
  p.model = load_pretrained(init_from, {parse_torch_dtype(cfg.policy.dtype), parse_torch_device(cfg.policy.device)});
  p.config = p.model->config();
  return p;
}

trainer_actor_options sft_trainer_options(const experiment_config& cfg, const offline_policy& p) {
  trainer_actor_options o;
  o.objective = trainer_objective::sft;
  o.trainer = cfg.trainer;
  o.trainer.lr = cfg.sft.lr;
  o.trainer.microbatch_size = cfg.sft.microbatch_size;
  o.pad_id = p.pad_id;
  return o;
}

void validate_offline(const experiment_config& cfg) {
  const auto& d = cfg.data;
  validate_policy(cfg.policy);
  if (d.path.empty() == d.generate.empty())
    throw input_error(d.path.empty() ? "data: give data.path (a JSON Lines file) or data.generate: arithmetic"
                                     : "data: give data.path or data.generate, not both");
  if (!d.generate.empty() && !d.eval_path.empty())
    throw input_error("data.eval_path: generated data draws its own held-out split; remove eval_path");
  if (d.generate == "arithmetic") arithmetic_options::parse(cfg.env.options);
  const auto context = load_policy_tokenizer(cfg).config.max_position_embeddings;
  if (d.max_length > context)
    throw input_error("data.max_length (" + std::to_string(d.max_length) + ") exceeds " +
                      (cfg.policy.path.empty() ? std::string("policy.max_position_embeddings")
                                               : "the context of policy.path '" + cfg.policy.path + "'") +
                      " (" + std::to_string(context) + ")");
  cfg.trainer.validate("trainer");
}

sft_dataset load_sft_dataset(const experiment_config& cfg, const offline_policy& p) {
  sft_dataset out;
  for (auto s : {split::train, split::eval}) {
    auto examples = examples_of<sft_example>(cfg, s, read_sft_jsonl, arithmetic_sft_examples);
    auto& dst = s == split::train ? out.train : out.eval;
    for (const auto& e : examples) {
      auto r = tokenize_example(*p.tok, p.tokenize, e.prompt, e.chat, e.response, e.source);
      out.truncated += r.truncated ? 1 : 0;
      dst.push_back(std::move(r.example));
    }
  }
  return out;
}

preference_dataset load_preference_dataset(const experiment_config& cfg, const offline_policy& p) {
  preference_dataset out;
  for (auto s : {split::train, split::eval}) {
    auto examples = examples_of<preference_example>(cfg, s, read_preference_jsonl, arithmetic_preference_examples);
    auto& dst = s == split::train ? out.train : out.eval;
    for (const auto& e : examples) {
      auto c = tokenize_example(*p.tok, p.tokenize, e.prompt, e.chat, e.chosen, e.source + " (chosen)");
      auto r = tokenize_example(*p.tok, p.tokenize, e.prompt, e.chat, e.rejected, e.source + " (rejected)");
      out.truncated += (c.truncated ? 1 : 0) + (r.truncated ? 1 : 0);
      dst.push_back({std::move(c.example), std::move(r.example)});
    }
  }
  return out;
}

epoch_sampler::epoch_sampler(std::size_t count, std::uint64_t seed) : count_(count), seed_(seed) {
  if (count == 0) throw input_error("data: no training examples");
  shuffle();
}

void epoch_sampler::shuffle() {
  order_.resize(count_);
  for (std::size_t i = 0; i < count_; ++i) order_[i] = i;
  std::mt19937_64 rng(splitmix64(seed_ ^ splitmix64(static_cast<std::uint64_t>(epoch_) + 0xe90c4ULL)));
  std::shuffle(order_.begin(), order_.end(), rng);
  pos_ = 0;
}

void epoch_sampler::skip(std::size_t draws) {
  while (draws > 0) {
    if (pos_ == order_.size()) {
      ++epoch_;
      shuffle();
    }
    const auto n = std::min(draws, order_.size() - pos_);
    pos_ += n;
    draws -= n;
  }
}

std::vector<std::size_t> epoch_sampler::next(std::size_t batch_size) {
  std::vector<std::size_t> out;
  while (out.size() < batch_size) {
    if (pos_ == order_.size()) {
      ++epoch_;
      shuffle();
    }
    out.push_back(order_[pos_++]);
  }
  return out;
}

std::int64_t run_offline_loop(experiment_context& ctx, const offline_schedule& schedule, const offline_stages& stages) {
  const auto& s = schedule;
  std::int64_t step = 0, last_eval = -1, last_checkpoint = -1;
  if (ctx.resume) {
    step = stages.restore(*ctx.resume);
    last_checkpoint = step;
    // The evaluation the schedule has at that step, if any, came before the checkpoint
    // and so is in the store already.
    if (step == 0 || step == s.steps || (s.eval_every > 0 && step % s.eval_every == 0)) last_eval = step;
    ctx.out << "resumed at " << s.stage << " step " << step << '\n';
  } else {
    stages.evaluate(0);
    last_eval = 0;
    if (s.checkpoint_at_start) {
      stages.checkpoint(0);
      last_checkpoint = 0;
    }
  }
  progress bar(s.stage, std::max<std::int64_t>(1, s.steps), parse_progress_style(ctx.config.system.progress), ctx.out,
               step);
  for (; step < s.steps && !stop_requested(); ++step) {
    const auto metrics = stages.train(step);
    if (due(s.eval_every, step + 1, s.steps)) {
      stages.evaluate(step + 1);
      last_eval = step + 1;
    }
    if (due(s.checkpoint_every, step + 1, s.steps)) {
      stages.checkpoint(step + 1);
      last_checkpoint = step + 1;
    }
    bar.update(step + 1, stages.figures(metrics));
  }
  bar.finish();
  if (last_eval != step) stages.evaluate(step);
  if (last_checkpoint != step) stages.checkpoint(step);
  return step;
}

void offline_coordinator::log(std::int64_t step, const std::map<std::string, double>& metrics) {
  std::vector<metric_row> rows;
  const double now = wall_clock_now();
  for (const auto& [k, v] : metrics) rows.push_back({step, k, v, now});
  ask<bool>(ctx_.store, metrics_atom::value, std::move(rows));
}

std::map<std::string, double> offline_coordinator::sft_step(const trainer_actor& trainer, const token_rows& rows,
                                                            std::int64_t step) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto tokens = rows.tokens();
  const auto nrows = static_cast<double>(rows.ids.size());
  auto m = ask<std::map<std::string, double>>(trainer, train_atom::value, rows);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m["sft/tokens_per_s"] = static_cast<double>(tokens) / s;
  m["sft/rows"] = nrows;
  m["time/step_s"] = s;
  log(step, m);
  return m;
}

namespace {

// Where the checkpoint of `step` lives, relative to the run directory.
std::string checkpoint_dir(std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%06lld", static_cast<long long>(step));
  return std::string("checkpoints/") + name;
}

}  // namespace

void offline_coordinator::checkpoint(const trainer_actor& trainer, std::int64_t step) {
  const auto rel = checkpoint_dir(step);
  const auto dir = std::filesystem::path(ctx_.run_path) / rel;
  std::filesystem::create_directories(dir.parent_path());
  ask<bool>(trainer, save_atom::value, dir.string());
  if (!ctx_.config.policy.path.empty()) copy_tokenizer_files(ctx_.config.policy.path, dir.string());
  ask<bool>(ctx_.store, ckpt_atom::value, checkpoint_row{step, rel, wall_clock_now()});
}

std::int64_t offline_coordinator::restore(const trainer_actor& trainer, const checkpoint_row& c,
                                          std::optional<std::int64_t> reference_step) {
  const auto run = std::filesystem::path(ctx_.run_path);
  const auto reference = reference_step ? (run / checkpoint_dir(*reference_step)).string() : std::string();
  const auto step = ask<std::int64_t>(trainer, load_atom::value, reference, (run / c.path).string());
  if (step != c.step)
    throw system_error("resume: checkpoint " + c.path + " holds step " + std::to_string(step) + ", the store says " +
                       std::to_string(c.step));
  return step;
}

void offline_coordinator::fail(const caf::error& err) {
  if (err.category() == errc_category && err.code() == static_cast<std::uint8_t>(errc::bad_input))
    throw input_error(render(err));
  throw system_error(render(err));
}

std::optional<double> recorded_metric(const experiment_context& ctx, const std::string& name, std::int64_t step) {
  // A second, read-only connection: the store actor writes in WAL mode, so this one
  // sees what it committed.
  auto store = run_store::open(std::filesystem::path(ctx.run_path) / store_file_name, store_mode::read_only);
  const auto rows = store.metrics(name);
  if (step < 0) return rows.empty() ? std::nullopt : std::optional<double>(rows.back().value);
  for (const auto& m : rows)
    if (m.step == step) return m.value;
  return std::nullopt;
}

}  // namespace troupe
