#include "experiments/grpo/grpo.hpp"

#include "experiments/grpo/grpo_run.hpp"

namespace troupe {

namespace grpo_detail {

void grpo_run::setup() {
  const auto& p = cfg_.policy;
  tasks_ = make_task_source(cfg_.env.name, cfg_.env.options, static_cast<std::uint64_t>(cfg_.run.seed));
  auto built = load_policy(cfg_);
  causal_lm policy = built.model;
  tok_ = built.tok;
  chat_ = built.chat;
  pad_id_ = built.pad_id;
  // The generator's own copy, synced from the trainer before the first rollout.
  causal_lm gen_copy(policy->config());
  gen_copy->to(parse_torch_device(p.device), parse_torch_dtype(p.dtype));
  if (!initial_weights_.empty()) load_weights(policy, initial_weights_);

  if (!cfg_.cluster.workers.empty()) join_cluster();
  env_ = place_env_hosts(env_host_options_for(cfg_.env, ctx_.store));
  // Crashed rails or reward actors come back (with an event); the episodes they were
  // judging fail and the step goes on.
  auto supervised = [this](const char* name, auto make) { return spawn_supervised(ctx_.sys, name, ctx_.store, make); };
  guard_model_ = spawn_training_guard_model(ctx_.sys, cfg_.guardrails, p, policy, tok_);
  rails_ = supervised("guardrails", [g = cfg_.guardrails, m = guard_model_](caf::actor_system& sys) {
    return spawn_guardrail_actor(sys, g, m);
  });
  reward_ = supervised("reward", [r = cfg_.reward, f = cfg_.grpo.failure_reward](caf::actor_system& sys) {
    return spawn_reward_actor(sys, r, f);
  });

  auto to = grpo_trainer_options(cfg_, pad_id_);
  place_trainer_ranks(to);
  trainer_ = spawn_trainer_actor(ctx_.sys, policy, to);
  generator_ = place_generators(gen_copy);
  publish_weights();
}

template <class T, class Batch, class Atom>
T grpo_run::train_all(Atom atom, Batch batch, std::vector<Batch> (*shard)(const Batch&, int)) {
  if (ranks_.empty()) return ask<T>(trainer_, atom, std::move(batch));
  auto shards = shard(batch, static_cast<int>(ranks_.size()) + 1);
  std::vector<pending_reply<T>> others;
  for (std::size_t k = 0; k < ranks_.size(); ++k) others.push_back(self_->request(ranks_[k].first, long_wait, atom, shards[k + 1]));
  auto out = ask_ranks<T>([&] { return ask<T>(trainer_, atom, std::move(shards[0])); });
  collect_ranks<T>(others);
  return out;
}

// Rank 0's answer; a failure there (a collective that lost a rank) stops the run with
// what to do next.
template <class T, class F>
T grpo_run::ask_ranks(F&& ask_rank0) {
  try {
    return ask_rank0();
  } catch (const system_error& e) {
    if (ranks_.empty()) throw;  // one trainer: its own error says it all (a full disk, ...)
    throw system_error(std::string("data-parallel training failed: ") + e.what() + "; the run stops at its last checkpoint" +
                       (last_checkpoint_ >= 0 ? " (GRPO step " + std::to_string(last_checkpoint_) + ")" : std::string()) +
                       ": troupe run --resume " + ctx_.run_path + " continues once every worker of cluster.workers has joined again");
  }
}

template <class T>
void grpo_run::collect_ranks(std::vector<pending_reply<T>>& others) {
  for (std::size_t k = 0; k < others.size(); ++k) {
    caf::error err;
    others[k].receive([](T&) {}, [&](caf::error& e) { err = std::move(e); });
    if (err)
      throw system_error("trainer rank " + std::to_string(k + 1) + " (worker " + ranks_[k].second + "): " + render(err));
  }
}

template <class T, class... Ts>
T grpo_run::ask_all(Ts... xs) {
  std::vector<pending_reply<T>> others;
  for (const auto& r : ranks_) others.push_back(self_->request(r.first, long_wait, xs...));
  auto out = ask_ranks<T>([&] { return ask<T>(trainer_, xs...); });
  collect_ranks<T>(others);
  return out;
}

void grpo_run::publish_weights() {
  auto update = ask<weight_update>(trainer_, weights_atom::value);
  ask<std::int64_t>(generator_, weights_atom::value, update);
}

void grpo_run::log(std::int64_t step, const std::map<std::string, double>& metrics) {
  std::vector<metric_row> rows;
  const double now = wall_clock_now();
  for (const auto& [k, v] : metrics) rows.push_back({step, k, v, now});
  ask<bool>(ctx_.store, metrics_atom::value, std::move(rows));
}

void grpo_run::log_rollouts(std::int64_t step, const std::vector<rollout>& rs) {
  std::vector<rollout_row> rows;
  // The first rollouts_logged, and failed episodes (up to as many again) with their errors.
  const auto n = static_cast<std::size_t>(cfg_.grpo.rollouts_logged);
  std::size_t failed_logged = 0;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    const auto& r = rs[i];
    if (i >= n && (!r.episode.failed || failed_logged >= n)) continue;
    if (i >= n) ++failed_logged;
    nlohmann::json comps(r.reward.components), verdicts = nlohmann::json::array();
    for (const auto& v : r.verdicts) {
      verdicts.push_back({{"rail", v.rail}, {"action", to_string(v.action)}, {"penalty", v.penalty}, {"reason", v.reason}});
      if (!v.note.empty()) verdicts.back()["note"] = v.note;  // fail-open / fail-closed of a model rail
    }
    if (r.episode.failed) comps["error"] = r.episode.error;
    rows.push_back({step, r.t->prompt, r.transcript, r.reward.total, comps.dump(), verdicts.dump(), r.gen.weight_version});
  }
  ask<bool>(ctx_.store, rollouts_atom::value, std::move(rows));
}

void grpo_run::sft_stage() {
  const auto& s = cfg_.sft;
  if (s.steps == 0) return;
  progress bar("sft", s.steps, parse_progress_style(cfg_.system.progress), ctx_.out);
  for (std::int64_t step = 0; step < s.steps && !stop_requested(); ++step) {
    // Supervised targets: the task's answer, ended by its observation's first stop
    // string, as a correct completion would be.
    std::vector<task> tasks;
    for (std::int64_t i = 0; i < s.batch_size; ++i) tasks.push_back(tasks_->at(split::train, cursor_++));
    const auto obs = observe(tasks);
    sft_batch b;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      const auto answer = tasks[i].metadata.find(cfg_.sft.target_key);
      if (answer == tasks[i].metadata.end())
        throw input_error("sft: task '" + tasks[i].id + "' has no metadata '" + cfg_.sft.target_key +
                          "' to learn; set sft.target_key, or sft.steps: 0");
      b.prompts.push_back(encode_prompt(obs[i].text));
      b.targets.push_back(tok_->encode(answer->second + (obs[i].stop_strings.empty() ? "" : obs[i].stop_strings.front())));
    }
    auto m = train_all<std::map<std::string, double>>(sft_atom::value, std::move(b), &shard_sft_batch);
    log(step, m);
    bar.update(step + 1, {{"loss", m["sft/loss"]}});
  }
  bar.finish();
  publish_weights();
}

void grpo_run::evaluate(std::int64_t step) {
  std::vector<task> tasks;
  for (std::int64_t i = 0; i < eval_count(); ++i) tasks.push_back(tasks_->at(split::eval, i));
  // Both requests first: the greedy answers are judged while the samples generate.
  const auto k = cfg_.grpo.pass_k;
  auto greedy_req = request_samples(tasks, 1, 0.0, 0xe7a1);
  auto sampled_req = request_samples(tasks, k, cfg_.grpo.temperature, 0xe7a2 + static_cast<std::uint64_t>(step));
  auto greedy = collect(greedy_req);
  judge(greedy);
  auto sampled = collect(sampled_req);
  judge(sampled);
  double pass1 = 0, passk = 0;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    pass1 += success(greedy[i]);
    bool any = false;
    for (std::int64_t g = 0; g < k; ++g)
      any |= success(sampled[i * static_cast<std::size_t>(k) + static_cast<std::size_t>(g)]) > 0;
    passk += any ? 1 : 0;
  }
  const double n = static_cast<double>(tasks.size());
  log(step, {{"eval/pass@1", pass1 / n}, {"eval/pass@" + std::to_string(k), passk / n}, {"eval/pass@k", passk / n}});
  ctx_.out << "eval at GRPO step " << step << ": pass@1 " << pass1 / n << ", pass@" << k << " " << passk / n << '\n';
  last_eval_ = step;
}

// Evaluations and checkpoints happen before the step of their number; generation for
// such a step is never requested ahead, so that it samples the weights the evaluation
// and the checkpoint saw (and a resumed run samples exactly as the first did).
bool grpo_run::sync_point(std::int64_t step) const {
  const auto& g = cfg_.grpo;
  return (g.eval_every > 0 && step % g.eval_every == 0) || (g.checkpoint_every > 0 && step % g.checkpoint_every == 0);
}

grpo_run::sample_request grpo_run::take_step_request(std::int64_t step) {
  const auto& g = cfg_.grpo;
  // Async GRPO: generation for up to max_staleness later steps is requested now, so the
  // generator samples them (with the weights it has) while this step is judged and
  // trained. The weights published after this step queue behind those requests, so a
  // rollout is at most max_staleness versions old.
  if (inflight_.empty() || inflight_.front().step != step) inflight_.push_front({step, request_step(step)});
  for (std::int64_t next = inflight_.back().step + 1;
       next <= step + g.max_staleness && next < g.steps && !sync_point(next); ++next)
    inflight_.push_back({next, request_step(next)});
  auto req = std::move(inflight_.front().req);
  inflight_.pop_front();
  return req;
}

grpo_run::trainable_batch grpo_run::build_rollout_batch(const std::vector<rollout>& rs) const {
  const auto& g = cfg_.grpo;
  // Advantages over each prompt's group (P, G).
  std::vector<double> totals;
  for (const auto& r : rs) totals.push_back(r.reward.total);
  auto rewards = torch::tensor(totals, torch::kFloat64).view({g.prompts_per_step, g.group_size});
  auto adv = compute_advantages(g.advantages, rewards).flatten().contiguous();
  trainable_batch out;
  auto& batch = out.batch;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    batch.prompts.push_back(rs[i].prompt);
    batch.completions.push_back(rs[i].gen.tokens);
    batch.gen_logprobs.push_back(rs[i].gen.logprobs);
    batch.advantages.push_back(adv[static_cast<std::int64_t>(i)].item<double>());
    batch.versions.push_back(rs[i].gen.weight_version);
  }
  // Loss masks: multi-turn rows hide the observations; with guardrails.on_block: mask,
  // a blocked completion is hidden whole (it still counted in its group's advantages).
  const bool mask_blocked = cfg_.guardrails.on_block == "mask";
  if (multi_turn() || mask_blocked) {
    for (const auto& r : rs) {
      auto m = r.mask.empty() ? std::vector<float>(r.gen.tokens.size(), 1.0f) : r.mask;
      const bool blocked = std::any_of(r.verdicts.begin(), r.verdicts.end(),
                                       [](const rail_verdict& v) { return v.action == rail_action::block; });
      if (mask_blocked && blocked) {
        std::fill(m.begin(), m.end(), 0.0f);
        ++out.masked;
      }
      batch.completion_masks.push_back(std::move(m));
    }
  }
  return out;
}

void grpo_run::add_rollout_metrics(std::int64_t step, const std::vector<rollout>& rs, const sample_stats& sampled,
                                   std::map<std::string, double>& m) const {
  const double n = static_cast<double>(rs.size());
  // Staleness: how many updates the trainer had made past the weights a rollout was
  // sampled with (0 in synchronous GRPO; at most max_staleness).
  std::map<std::int64_t, double> staleness;
  double staleness_sum = 0, staleness_max = 0;
  for (const auto& r : rs) {
    const auto k = step - r.gen.weight_version;
    staleness[k] += 1.0 / n;
    staleness_sum += static_cast<double>(k);
    staleness_max = std::max(staleness_max, static_cast<double>(k));
  }
  for (std::int64_t k = 0; k <= cfg_.grpo.max_staleness; ++k) m["train/staleness/" + std::to_string(k)] = staleness[k];
  m["train/staleness_mean"] = staleness_sum / n;
  // Per rail: the share of this step's completions it triggered on (any action but
  // allow). Every rail reports each step, 0 included, so the curve has no holes.
  std::map<std::string, double> triggered;
  for (const auto& r : rs)
    for (const auto& v : r.verdicts) triggered[v.rail] += v.action == rail_action::allow ? 0.0 : 1.0;
  for (const auto& [rail, count] : triggered) m["rails/" + rail + "/trigger_rate"] = count / n;
  m["train/staleness_max"] = staleness_max;
  // Of everything sampled this step (with dynamic sampling, more than was trained on).
  m["train/reward_mean"] = sampled.reward / sampled.rollouts;
  m["train/accuracy"] = sampled.correct / sampled.rollouts;
  m["train/failed_episodes"] = sampled.failed;
}

std::map<std::string, double> grpo_run::grpo_step(std::int64_t step) {
  const auto& g = cfg_.grpo;
  const auto t0 = clock_type::now();
  auto req = take_step_request(step);

  auto t = clock_type::now();
  auto rs = collect(req);
  const double generate_s = seconds_since(t);  // the part of generation this step waited for
  t = clock_type::now();
  judge(rs);
  const double env_s = seconds_since(t);
  t = clock_type::now();
  score(rs);
  const double reward_s = seconds_since(t);
  sample_stats sampled;
  sampled.add(*this, rs);
  std::map<std::string, double> dynamic;
  std::vector<sample_request> extra_rounds;  // outlives `rs`, which points at their tasks
  t = clock_type::now();
  if (g.dynamic_sampling) rs = keep_varied_groups(step, std::move(rs), extra_rounds, sampled, dynamic);
  const double dynamic_s = seconds_since(t);

  auto trainable = build_rollout_batch(rs);
  t = clock_type::now();
  // Every completion masked (all blocked): nothing to learn from, no update.
  auto m = trainable.masked == static_cast<double>(rs.size())
             ? std::map<std::string, double>{{"train/skipped", 1.0}}
             : train_all<std::map<std::string, double>>(
                   train_atom::value, std::move(trainable.batch),
                   // With dynamic batching a rank's time follows its tokens: balance them.
                   cfg_.trainer.microbatch_tokens > 0 ? &shard_rollout_batch_by_tokens : &shard_rollout_batch);
  const double train_s = seconds_since(t);
  t = clock_type::now();
  publish_weights();
  const double sync_s = seconds_since(t);

  const double step_s = seconds_since(t0);
  add_rollout_metrics(step, rs, sampled, m);
  if (cfg_.guardrails.on_block == "mask") m["train/masked_rollouts"] = trainable.masked;
  m["train/new_tokens_per_s"] = sampled.new_tokens / step_s;  // of step wall time, comparable sync vs async
  if (g.dynamic_sampling) {
    m.insert(dynamic.begin(), dynamic.end());
    m["time/dynamic_sampling_s"] = dynamic_s;
  }
  m["time/step_s"] = step_s;
  m["time/generate_s"] = generate_s;
  m["time/env_s"] = env_s;
  m["time/reward_s"] = reward_s;
  m["time/train_s"] = train_s;
  m["time/sync_s"] = sync_s;
  m["time/coordination_s"] = step_s - generate_s - env_s - reward_s - dynamic_s - train_s - sync_s;
  log(step, m);
  log_rollouts(step, rs);
  return m;
}

void grpo_run::checkpoint(std::int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%06lld", static_cast<long long>(step));
  const auto rel = std::string("checkpoints/") + name;
  const auto dir = (std::filesystem::path(ctx_.run_path) / rel).string();
  std::filesystem::create_directories(std::filesystem::path(dir).parent_path());
  ask_all<bool>(save_atom::value, dir);
  ask<bool>(ctx_.store, ckpt_atom::value, checkpoint_row{step, rel, wall_clock_now()});
  last_checkpoint_ = step;
}

// Resume: the trainer takes the checkpoint's weights and optimizer state (and, when the
// loss has a KL term, the post-SFT weights of checkpoint 0 as its reference), the
// generator the same weights. Sampling seeds derive from the step and the task cursor
// from the step too, so the run goes on as if it had never stopped.
std::int64_t grpo_run::restore(const checkpoint_row& c) {
  const auto run = std::filesystem::path(ctx_.run_path);
  const std::string reference =
    cfg_.grpo.loss.reference_policy_kl_penalty != 0 ? (run / "checkpoints" / "step_000000").string() : std::string();
  const auto step = ask_all<std::int64_t>(load_atom::value, reference, (run / c.path).string());
  if (step != c.step)
    throw system_error("resume: checkpoint " + c.path + " holds GRPO step " + std::to_string(step) +
                       ", the store says " + std::to_string(c.step));
  publish_weights();
  return step;
}

void grpo_run::shutdown() {
  auto stop = [this](const auto& a) {
    if (a) self_->send_exit(a, caf::exit_reason::user_shutdown);
  };
  stop(env_), stop(rails_), stop(guard_model_), stop(reward_), stop(generator_), stop(trainer_);
  for (auto& r : ranks_) self_->send_exit(r.first, caf::exit_reason::user_shutdown);
  head_.reset();  // tells the workers the run is over; they stop their actors
}

experiment_outcome grpo_run::run() {
  return run_guarded(
    [&] {
      experiment_outcome out;
      setup();
      const auto& g = cfg_.grpo;
      std::int64_t step = 0;
      if (ctx_.resume) {
        step = restore(*ctx_.resume);
        last_checkpoint_ = step;  // and its evaluation, if it had one, is in the store
        ctx_.out << "resumed at GRPO step " << step << '\n';
      } else {
        sft_stage();
        if (stop_requested())  // no checkpoint of half an SFT stage: a resume starts over
          return experiment_outcome{"stopped", "stopped during the SFT stage"};
        evaluate(0);
        checkpoint(0);  // the post-SFT policy: where a resume finds the KL reference
      }
      cursor_ = cfg_.sft.steps * cfg_.sft.batch_size;  // GRPO step s draws the prompts_per_step train tasks after s * prompts_per_step
      progress bar("grpo", std::max<std::int64_t>(1, g.steps), parse_progress_style(cfg_.system.progress), ctx_.out, step);
      for (; step < g.steps && !stop_requested(); ++step) {
        auto m = grpo_step(step);
        bar.update(step + 1, {{"reward", m["train/reward_mean"]},
                              {"acc", m["train/accuracy"]},
                              {"tok/s", m["train/new_tokens_per_s"]}});
        if (g.eval_every > 0 && (step + 1) % g.eval_every == 0 && step + 1 < g.steps) evaluate(step + 1);
        if (g.checkpoint_every > 0 && (step + 1) % g.checkpoint_every == 0 && step + 1 < g.steps) checkpoint(step + 1);
      }
      bar.finish();
      // A stop right after an evaluation or checkpoint step has both already.
      if (last_eval_ != step) evaluate(step);
      if (last_checkpoint_ != step) checkpoint(step);
      out.status = stop_requested() ? "stopped" : "finished";
      out.message = "grpo: " + std::to_string(step) + " steps";
      return out;
    },
    [&] { shutdown(); });
}

experiment_outcome grpo_run::evaluate_weights(const std::string& dir, std::int64_t step) {
  initial_weights_ = dir;
  return run_guarded(
    [&] {
      setup();
      evaluate(step);
      return experiment_outcome{"finished", "evaluated " + dir};
    },
    [&] { shutdown(); });
}

}  // namespace grpo_detail

using namespace grpo_detail;

void validate_grpo(const experiment_config& cfg) {
  if (!cfg.policy.path.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::path(cfg.policy.path) / "config.json", ec))
      throw input_error("policy.path: '" + cfg.policy.path + "' is not a Hugging Face model directory (no config.json)");
    if (!std::filesystem::is_regular_file(std::filesystem::path(cfg.policy.path) / "tokenizer.json", ec))
      throw input_error("policy.path: '" + cfg.policy.path + "' has no tokenizer.json");
  }
  if (cfg.policy.chat_format != "auto") chat_format_from_name(cfg.policy.chat_format);
  // The environment and its tasks, built once here so that unknown names, bad options
  // and malformed task files fail before a run directory exists.
  std::vector<std::string> envs;
  for (const auto& e : registered_environments()) envs.push_back(e.name);
  if (std::find(envs.begin(), envs.end(), cfg.env.name) == envs.end())
    throw input_error("env.name: unknown environment '" + cfg.env.name + "'" + suggest(cfg.env.name, envs) +
                      " (troupe envs list shows them)");
  make_environment(cfg.env.name, cfg.env.options);
  const auto tasks = make_task_source(cfg.env.name, cfg.env.options, static_cast<std::uint64_t>(cfg.run.seed));
  if (tasks->size(split::eval).value_or(1) == 0)
    throw input_error("env.options: the tasks have no eval split; evaluation needs some (see docs/environments.md)");
  if (cfg.sft.steps > 0 && tasks->at(split::train, 0).metadata.count(cfg.sft.target_key) == 0)
    throw input_error("sft.target_key: the tasks of env " + cfg.env.name + " have no metadata '" + cfg.sft.target_key +
                      "' for the SFT stage to learn; name another key, or set sft.steps: 0");
  // Stale rollouts come from another policy than the trainer's: without the importance
  // weight exp(lp_old - lp_gen) the update would be biased (NeMo RL requires it too).
  if (cfg.grpo.max_staleness > 0 && !cfg.grpo.loss.use_importance_sampling_correction)
    throw input_error("grpo.max_staleness: async GRPO trains on rollouts of older weights and needs the importance "
                      "correction; set grpo.loss.use_importance_sampling_correction: true (and optionally "
                      "grpo.loss.truncated_importance_sampling_type: tis)");
  // Their messages start with "loss: " and "advantages: "; here they live under grpo.
  auto under_grpo = [](auto&& check) {
    try {
      check();
    } catch (const input_error& e) {
      throw input_error(std::string("grpo.") + e.what());
    }
  };
  if (cfg.grpo.dynamic_sampling && cfg.grpo.group_size < 2)
    throw input_error("grpo.dynamic_sampling: a group of one sample never has varied rewards, so every group would be "
                      "dropped; set grpo.group_size to 2 or more, or grpo.dynamic_sampling: false");
  under_grpo([&] { cfg.grpo.loss.validate(); });
  under_grpo([&] { cfg.grpo.advantages.validate(); });
  cfg.trainer.validate("trainer");
  if (cfg.weight_sync.codec == "fp8") cfg.weight_sync.fp8.validate("weight_sync.fp8");
  if (cfg.weight_sync.transport == "nccl" && cfg.policy.device.rfind("cuda", 0) != 0)
    throw input_error("weight_sync.transport: nccl carries CUDA tensors, but policy.device is '" + cfg.policy.device +
                      "'; use gloo, or a cuda device");
  validate_guardrails(cfg.guardrails);  // a bad rails file fails here, naming file:line and the rail
  reward_combiner{cfg.reward};  // malformed reward.weights
  // Scale-out: the cluster section, and enough rows for every trainer rank.
  validate(cfg.cluster);
  const int world = trainer_world(cfg.cluster);
  bool links = false;
  for (const auto& w : cfg.cluster.workers) links |= w.generators > 0 || w.trainer_ranks > 0;
  if (links) link_host(cfg.cluster);
  const auto rows = cfg.grpo.prompts_per_step * cfg.grpo.group_size;
  if (rows < world)
    throw input_error("cluster.workers: " + std::to_string(world) + " trainer ranks need at least as many rollouts per step; " +
                      "grpo.prompts_per_step x grpo.group_size is " + std::to_string(rows));
  if (cfg.sft.steps > 0 && cfg.sft.batch_size < world)
    throw input_error("cluster.workers: " + std::to_string(world) + " trainer ranks need sft.batch_size of at least " +
                      std::to_string(world) + " (it is " + std::to_string(cfg.sft.batch_size) + ")");
  small_model_config(cfg.policy, 2);  // head and size checks; the vocabulary comes later
  parse_torch_dtype(cfg.policy.dtype);
  parse_torch_device(cfg.policy.device);
}

experiment_outcome run_grpo(experiment_context& ctx) {
  grpo_run run(ctx);
  return run.run();
}

experiment_outcome eval_grpo(experiment_context& ctx, const std::string& checkpoint) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::path(checkpoint) / "config.json", ec))
    throw input_error("--checkpoint '" + checkpoint + "': not a model directory (no config.json)");
  // step_000200 -> 200: the metrics line up with the run the checkpoint came from.
  std::int64_t step = 0;
  const auto name = std::filesystem::path(checkpoint).lexically_normal().filename().string().empty()
                      ? std::filesystem::path(checkpoint).lexically_normal().parent_path().filename().string()
                      : std::filesystem::path(checkpoint).lexically_normal().filename().string();
  if (name.rfind("step_", 0) == 0 && name.size() > 5 && name.find_first_not_of("0123456789", 5) == std::string::npos)
    step = std::stoll(name.substr(5));
  grpo_run run(ctx);
  return run.evaluate_weights(checkpoint, step);
}

}  // namespace troupe
