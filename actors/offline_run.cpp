#include "actors/offline_run.hpp"

#include <algorithm>
#include <filesystem>
#include <random>

#include "actors/atoms.hpp"
#include "actors/errors.hpp"
#include "actors/message_types.hpp"
#include "core/hash.hpp"
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

offline_policy make_offline_tokenizer(const experiment_config& cfg) {
  auto tok = make_char_tokenizer(cfg.tokenizer.alphabet, {"<pad>", "<bos>", "<eos>"});
  tok->set_special_ids(tok->token_to_id("<bos>"), tok->token_to_id("<eos>"), tok->token_to_id("<pad>"));
  offline_policy p;
  p.tok = std::move(tok);
  p.tokenize.format = chat_format::plain;
  p.tokenize.max_length = cfg.data.max_length > 0 ? cfg.data.max_length : cfg.policy.max_position_embeddings;
  return p;
}

offline_policy make_offline_policy(const experiment_config& cfg, const std::string& init_from) {
  auto p = make_offline_tokenizer(cfg);
  const auto vocab = static_cast<std::int64_t>(p.tok->vocab_size());
  const auto dtype = parse_torch_dtype(cfg.policy.dtype);
  const auto device = parse_torch_device(cfg.policy.device);
  if (!init_from.empty()) {
    p.model = load_pretrained(init_from, {dtype, device});
    if (p.model->config().vocab_size != vocab)
      throw input_error(init_from + ": the checkpoint's vocabulary has " + std::to_string(p.model->config().vocab_size) +
                        " ids, the tokenizer of tokenizer.alphabet " + std::to_string(vocab) +
                        ": use the alphabet it was trained with");
    return p;
  }
  auto mcfg = small_model_config(cfg.policy, vocab);
  mcfg.eos_token_ids = {*p.tok->eos_id()};
  p.model = causal_lm(mcfg);
  p.model->init_weights(static_cast<std::uint64_t>(cfg.policy.init_seed));
  p.model->to(device, dtype);
  return p;
}

offline_trainer_options sft_trainer_options(const experiment_config& cfg, const offline_policy& p) {
  offline_trainer_options o;
  o.objective = offline_objective::sft;
  o.trainer = cfg.trainer;
  o.trainer.lr = cfg.sft.lr;
  o.trainer.microbatch_size = cfg.sft.microbatch_size;
  o.pad_id = *p.tok->pad_id();
  return o;
}

void validate_offline(const experiment_config& cfg) {
  const auto& d = cfg.data;
  if (!cfg.policy.path.empty())
    throw input_error("policy.path: the " + cfg.experiment + " experiment trains small models built from troupe "
                      "config for now; leave policy.path empty (dpo.init_from starts from a checkpoint of one)");
  if (d.path.empty() == d.generate.empty())
    throw input_error(d.path.empty() ? "data: give data.path (a JSON Lines file) or data.generate: arithmetic"
                                     : "data: give data.path or data.generate, not both");
  if (!d.generate.empty() && !d.eval_path.empty())
    throw input_error("data.eval_path: generated data draws its own held-out split; remove eval_path");
  if (d.generate == "arithmetic") arithmetic_options::parse(cfg.env.options);
  if (d.max_length > cfg.policy.max_position_embeddings)
    throw input_error("data.max_length (" + std::to_string(d.max_length) + ") exceeds policy.max_position_embeddings (" +
                      std::to_string(cfg.policy.max_position_embeddings) + ")");
  cfg.trainer.validate("trainer");
  small_model_config(cfg.policy, 2);
  parse_torch_dtype(cfg.policy.dtype);
  parse_torch_device(cfg.policy.device);
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

void offline_coordinator::log(std::int64_t step, const std::map<std::string, double>& metrics) {
  std::vector<metric_row> rows;
  const double now = wall_clock_now();
  for (const auto& [k, v] : metrics) rows.push_back({step, k, v, now});
  ask<bool>(ctx_.store, metrics_atom::value, std::move(rows));
}

std::map<std::string, double> offline_coordinator::sft_step(const caf::actor& trainer, const token_rows& rows,
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

void offline_coordinator::checkpoint(const caf::actor& trainer, std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%06lld", static_cast<long long>(step));
  const auto rel = std::string("checkpoints/") + name;
  const auto dir = std::filesystem::path(ctx_.run_path) / rel;
  std::filesystem::create_directories(dir.parent_path());
  ask<bool>(trainer, save_atom::value, dir.string());
  ask<bool>(ctx_.store, ckpt_atom::value, checkpoint_row{step, rel, wall_clock_now()});
}

void offline_coordinator::stop(const caf::actor& a) {
  if (a) self_->send_exit(a, caf::exit_reason::user_shutdown);
}

void offline_coordinator::fail(const caf::error& err) {
  if (err.category() == errc_category && err.code() == static_cast<std::uint8_t>(errc::bad_input))
    throw input_error(render(err));
  throw system_error(render(err));
}

}  // namespace troupe
