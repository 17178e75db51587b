// Sampling and judging GRPO rollouts (experiments/grpo/grpo_run.hpp).
#include "experiments/grpo/grpo_run.hpp"

namespace troupe::grpo_detail {

// The task's prompt in the policy's chat format (experiments/setup/policy_setup.hpp).
std::vector<std::int32_t> grpo_run::encode_prompt(const std::string& text) const {
  return troupe::encode_prompt(*tok_, chat_, text);
}

// The environment's first observation of each task: the prompt text and where the
// policy's answer stops. Asked of the env host's instances, all at once.
std::vector<observation> grpo_run::observe(const std::vector<task>& tasks) {
  std::vector<pending_reply<observation>> pending;
  for (const auto& t : tasks) pending.push_back(self_->request(env_, long_wait, reset_atom::value, t));
  std::vector<observation> out(tasks.size());
  for (std::size_t i = 0; i < tasks.size(); ++i)
    // An environment that cannot start a task (it throws, or its worker crashed) still
    // gets the task's own prompt: the episode's judging then fails the same way and is
    // recorded as failed with the error, and the step goes on.
    pending[i].receive([&](observation& o) { out[i] = std::move(o); },
                       [&](caf::error&) { out[i] = {tasks[i].prompt, {}}; });
  return out;
}

// Evaluation prompts: grpo.eval_prompts, or all of a tasks file's eval split if fewer.
std::int64_t grpo_run::eval_count() const {
  return std::min(cfg_.grpo.eval_prompts, tasks_->size(split::eval).value_or(cfg_.grpo.eval_prompts));
}

grpo_run::sample_request grpo_run::request_samples(std::vector<task> tasks, std::int64_t per_task, double temperature,
                                                   std::uint64_t salt) {
  sample_request out;
  out.tasks = std::make_unique<std::vector<task>>(std::move(tasks));
  std::vector<gen_request> reqs;
  const auto& ts = *out.tasks;
  out.temperature = temperature;
  // Single-turn: each task's first observation from the pool's instances. Multi-turn:
  // every sample opens an episode of its own, whose first observation is its prompt.
  std::vector<observation> obs;
  std::vector<std::int64_t> ids;
  std::map<std::size_t, std::string> open_errors;
  if (!multi_turn()) {
    obs = observe(ts);
  } else {
    std::vector<pending_reply<observation>> pending;
    for (const auto& t : ts)
      for (std::int64_t g = 0; g < per_task; ++g) {
        ids.push_back(next_episode_++);
        pending.push_back(self_->request(env_, long_wait, open_atom::value, ids.back(), t));
      }
    // An episode that cannot start is failed with the reason; it still gets a
    // generation from the task's own prompt, so that its group keeps its size.
    for (std::size_t k = 0; k < pending.size(); ++k)
      pending[k].receive([&](observation& o) { obs.push_back(std::move(o)); },
                         [&](caf::error& err) {
                           obs.push_back({ts[k / static_cast<std::size_t>(per_task)].prompt, {}});
                           open_errors[k] = "cannot start the episode: " + render(err);
                         });
  }
  for (std::size_t i = 0; i < ts.size(); ++i) {
    for (std::int64_t g = 0; g < per_task; ++g) {
      const auto k = multi_turn() ? i * static_cast<std::size_t>(per_task) + static_cast<std::size_t>(g) : i;
      auto prompt = encode_prompt(obs[k].text);
      gen_request r;
      r.prompt = prompt;
      r.max_new_tokens = cfg_.grpo.max_new_tokens;
      r.temperature = temperature;
      r.top_p = cfg_.grpo.top_p;
      r.top_k = cfg_.grpo.top_k;
      r.stop_strings = obs[k].stop_strings;
      r.seed = splitmix64(static_cast<std::uint64_t>(cfg_.run.seed) ^ splitmix64(salt + i * 1000003ULL + static_cast<std::uint64_t>(g)));
      rollout ro;
      ro.t = &ts[i];
      ro.prompt = prompt;
      ro.seed = r.seed;
      if (multi_turn()) ro.episode_id = ids[k];
      if (auto e = open_errors.find(k); multi_turn() && e != open_errors.end()) {
        ro.episode.failed = true;
        ro.episode.error = e->second;
      }
      reqs.push_back(std::move(r));
      out.rollouts.push_back(std::move(ro));
    }
  }
  out.handle.emplace(self_->request(generator_, long_wait, generate_atom::value, std::move(reqs)));
  return out;
}

std::vector<rollout> grpo_run::collect(sample_request& req) {
  std::vector<gen_result> gens;
  caf::error err;
  req.handle->receive([&](std::vector<gen_result>& g) { gens = std::move(g); }, [&](caf::error& e) { err = std::move(e); });
  if (err) throw system_error("generator: " + render(err));
  auto rs = std::move(req.rollouts);
  for (std::size_t i = 0; i < rs.size(); ++i) {
    rs[i].gen = std::move(gens[i]);
    rs[i].transcript = rs[i].gen.text;
  }
  if (multi_turn()) play(rs, req.temperature);
  return rs;
}

// An observation as a turn of the conversation, continuing right after the policy's
// last action: closed assistant turn, the user turn, the next assistant header (plain:
// the text itself). The generator's next prompt is the episode's tokens so far plus
// these, and so is the training row: what was sampled is what is trained on.
std::vector<std::int32_t> grpo_run::encode_observation(const std::string& text) const {
  switch (chat_) {
    case chat_format::chatml:
      return tok_->encode("<|im_end|>\n<|im_start|>user\n" + text + "<|im_end|>\n<|im_start|>assistant\n");
    case chat_format::llama3:
      return tok_->encode("<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n" + text +
                          "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    case chat_format::plain:
      break;
  }
  return tok_->encode(text);
}

// Multi-turn episodes after their first action: the environment answers every open
// episode's last action at once, then the generator writes the next action of those
// still running, in one batch, until each is done, fails, or reaches env.max_turns.
// Rewards of all turns add up.
void grpo_run::play(std::vector<rollout>& rs, double temperature) {
  const std::size_t n = rs.size();
  std::vector<std::vector<std::int32_t>> context(n);
  std::vector<std::string> action(n);
  std::vector<std::vector<std::string>> stops(n);
  std::vector<std::size_t> active;
  // The per-episode deadline, counted from the first action (each turn also has its
  // own, env.step_timeout_s, in the env host).
  const auto deadline = clock_type::now() + std::chrono::milliseconds(static_cast<std::int64_t>(cfg_.env.episode_timeout_s * 1000));
  for (std::size_t i = 0; i < n; ++i) {
    auto& r = rs[i];
    context[i] = r.prompt;
    context[i].insert(context[i].end(), r.gen.tokens.begin(), r.gen.tokens.end());
    r.mask.assign(r.gen.tokens.size(), 1.0f);
    r.episode.task_id = r.t->id;
    action[i] = r.gen.text;
    if (!r.episode.failed) active.push_back(i);  // failed: it could not even start
  }
  for (std::int64_t turn = 1; !active.empty(); ++turn) {
    std::vector<pending_reply<step_result>> pending;
    for (auto i : active) pending.push_back(self_->request(env_, long_wait, step_atom::value, rs[i].episode_id, action[i]));
    std::vector<std::size_t> next;
    for (std::size_t k = 0; k < active.size(); ++k) {
      auto& r = rs[active[k]];
      const auto i = active[k];
      pending[k].receive(
        [&](step_result& x) {
          for (const auto& [name, v] : x.rewards) r.episode.verdict.rewards[name] += v;
          for (auto& [key, v] : x.info) r.episode.verdict.info[key] = std::move(v);
          if (x.done) return;
          if (clock_type::now() > deadline) {
            r.episode.failed = true;
            r.episode.error = "episode exceeded env.episode_timeout_s (" + std::to_string(cfg_.env.episode_timeout_s) + " s)";
            self_->request(env_, long_wait, close_atom::value, r.episode_id).receive([](bool) {}, [](caf::error&) {});
            return;
          }
          if (turn >= cfg_.env.max_turns) {
            r.episode.verdict.info["end"] = "max_turns";
            self_->request(env_, long_wait, close_atom::value, r.episode_id).receive([](bool) {}, [](caf::error&) {});
            return;
          }
          auto glue = encode_observation(x.next.text);
          context[i].insert(context[i].end(), glue.begin(), glue.end());
          r.gen.tokens.insert(r.gen.tokens.end(), glue.begin(), glue.end());
          r.gen.logprobs.insert(r.gen.logprobs.end(), glue.size(), 0.0f);
          r.mask.insert(r.mask.end(), glue.size(), 0.0f);
          r.transcript += x.next.text;
          stops[i] = std::move(x.next.stop_strings);
          next.push_back(i);
        },
        [&](caf::error& err) {
          r.episode.failed = true;
          r.episode.error = render(err);
        });
    }
    active = std::move(next);
    if (active.empty()) break;
    std::vector<gen_request> reqs;
    for (auto i : active) {
      gen_request g;
      g.prompt = context[i];
      g.max_new_tokens = cfg_.grpo.max_new_tokens;
      g.temperature = temperature;
      g.top_p = cfg_.grpo.top_p;
      g.top_k = cfg_.grpo.top_k;
      g.stop_strings = stops[i];
      g.seed = splitmix64(rs[i].seed + static_cast<std::uint64_t>(turn));
      reqs.push_back(std::move(g));
    }
    auto gens = ask<std::vector<gen_result>>(generator_, generate_atom::value, std::move(reqs));
    for (std::size_t k = 0; k < active.size(); ++k) {
      auto& r = rs[active[k]];
      auto& g = gens[k];
      context[active[k]].insert(context[active[k]].end(), g.tokens.begin(), g.tokens.end());
      r.gen.tokens.insert(r.gen.tokens.end(), g.tokens.begin(), g.tokens.end());
      r.gen.logprobs.insert(r.gen.logprobs.end(), g.logprobs.begin(), g.logprobs.end());
      r.mask.insert(r.mask.end(), g.tokens.size(), 1.0f);
      r.gen.text += g.text;
      r.transcript += g.text;
      action[active[k]] = std::move(g.text);
    }
  }
  for (auto& r : rs) r.episode.verdict.done = true;
}

// Whether an episode succeeded: its env.success reward component is positive.
double grpo_run::success(const rollout& r) const {
  const auto& rw = r.episode.verdict.rewards;
  auto it = rw.find(cfg_.env.success);
  return it != rw.end() && it->second > 0 ? 1.0 : 0.0;
}

void grpo_run::judge(std::vector<rollout>& rs) {
  if (multi_turn()) return;  // play() judged every turn already
  std::vector<pending_reply<episode_result>> pending;
  for (auto& r : rs) pending.push_back(self_->request(env_, long_wait, judge_atom::value, episode_request{*r.t, r.gen.text}));
  // The host answers every episode, failed ones included; an error means the host
  // itself is gone (a worker past its restart limit), and the run cannot go on.
  caf::error host_error;
  for (std::size_t i = 0; i < rs.size(); ++i)
    pending[i].receive([&](episode_result& e) { rs[i].episode = std::move(e); },
                       [&](caf::error& err) { host_error = std::move(err); });
  if (host_error) throw system_error("env host: " + render(host_error));
}

void grpo_run::score(std::vector<rollout>& rs) {
  std::vector<pending_reply<std::vector<rail_verdict>>> checks;
  for (auto& r : rs) checks.push_back(self_->request(rails_, long_wait, check_atom::value, rail_stage::output, r.gen.text));
  // A rail or reward that fails on one episode fails that episode, not the run.
  auto fail = [](rollout& r, const std::string& why) {
    if (!r.episode.failed) r.episode.error = why;
    r.episode.failed = true;
  };
  for (std::size_t i = 0; i < rs.size(); ++i)
    checks[i].receive([&](std::vector<rail_verdict>& v) { rs[i].verdicts = std::move(v); },
                      [&](caf::error& err) { fail(rs[i], "guardrail: " + render(err)); });
  std::vector<pending_reply<reward_result>> scores;
  for (auto& r : rs)
    scores.push_back(self_->request(reward_, long_wait, score_atom::value,
                                    reward_request{r.episode.verdict.rewards, r.verdicts, r.episode.failed}));
  for (std::size_t i = 0; i < rs.size(); ++i)
    scores[i].receive([&](reward_result& x) { rs[i].reward = std::move(x); },
                      [&](caf::error& err) {
                        fail(rs[i], "reward: " + render(err));
                        rs[i].reward = reward_result{};
                        rs[i].reward.total = cfg_.grpo.failure_reward;
                      });
}

grpo_run::sample_request grpo_run::request_step(std::int64_t step) {
  const auto& g = cfg_.grpo;
  std::vector<task> tasks;
  for (std::int64_t i = 0; i < g.prompts_per_step; ++i)
    tasks.push_back(tasks_->at(split::train, cursor_ + step * g.prompts_per_step + i));
  return request_samples(std::move(tasks), g.group_size, g.temperature, 0x5a17 + static_cast<std::uint64_t>(step) * 7919);
}

void grpo_run::sample_stats::add(const grpo_run& run, const std::vector<rollout>& rs) {
  for (const auto& r : rs) {
    rollouts += 1;
    reward += r.reward.total;
    correct += run.success(r);
    failed += r.episode.failed ? 1 : 0;
    new_tokens += static_cast<double>(r.gen.tokens.size());
  }
}

// Dynamic sampling: `first` (judged and scored) is offered to a dynamic_sampling_buffer;
// while fewer than prompts_per_step groups with varied rewards are kept, another batch
// of prompts_per_step prompts is sampled, judged and scored. The extra prompts come
// from a range of the train split that the run's steps never reach (past steps x
// prompts_per_step), and everything derives from the step, so a resumed run samples
// the same. `rounds` keeps the extra requests alive: their rollouts point at their tasks.
std::vector<rollout> grpo_run::keep_varied_groups(std::int64_t step, std::vector<rollout> first,
                                                  std::vector<sample_request>& rounds, sample_stats& sampled,
                                                  std::map<std::string, double>& m) {
  const auto& g = cfg_.grpo;
  const auto P = g.prompts_per_step, G = g.group_size;
  dynamic_sampling_buffer buf(P, g.dynamic_sampling_max_gen_batches);
  std::vector<rollout> kept;
  double zero_variance = 0;
  auto offer = [&](std::vector<rollout>& rs) {
    std::vector<double> totals;
    for (const auto& r : rs) totals.push_back(r.reward.total);
    auto rewards = torch::tensor(totals, torch::kFloat64).view({static_cast<std::int64_t>(rs.size()) / G, G});
    zero_variance += zero_variance_groups(rewards).sum().item<double>();
    std::vector<std::int64_t> keep;
    try {
      keep = buf.offer(rewards);
    } catch (const input_error& e) {
      // "dynamic sampling: only ... raise dynamic_sampling_max_gen_batches, ...": name the keys.
      std::string what = e.what();
      if (what.rfind("dynamic sampling: ", 0) == 0) what = what.substr(18);
      if (auto at = what.find("raise dynamic_sampling"); at != std::string::npos) what.insert(at + 6, "grpo.");
      throw input_error("grpo.dynamic_sampling (GRPO step " + std::to_string(step) + "): " + what);
    }
    for (auto i : keep)
      for (std::int64_t j = 0; j < G; ++j) kept.push_back(std::move(rs[static_cast<std::size_t>(i * G + j)]));
  };
  offer(first);
  for (std::int64_t round = 1; !buf.full(); ++round) {
    std::vector<task> tasks;
    const auto base = cursor_ + (g.steps + step * g.dynamic_sampling_max_gen_batches + round - 1) * P;
    for (std::int64_t i = 0; i < P; ++i) tasks.push_back(tasks_->at(split::train, base + i));
    rounds.push_back(request_samples(std::move(tasks), G, g.temperature,
                                     0xd5a3 + static_cast<std::uint64_t>(step) * 7919 +
                                         static_cast<std::uint64_t>(round) * 0x9e3779b9ULL));
    auto more = collect(rounds.back());
    judge(more);
    score(more);
    sampled.add(*this, more);
    offer(more);
  }
  m["train/dynamic_sampling/gen_batches"] = static_cast<double>(buf.rounds());
  m["train/dynamic_sampling/zero_variance_fraction"] = zero_variance / static_cast<double>(buf.groups_seen());
  return kept;
}

}  // namespace troupe::grpo_detail
