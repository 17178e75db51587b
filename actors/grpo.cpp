#include "actors/grpo.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "actors/actor_pool.hpp"
#include "actors/atoms.hpp"
#include "actors/cluster.hpp"
#include "actors/data_parallel.hpp"
#include "actors/env_host.hpp"
#include "actors/errors.hpp"
#include "actors/experiment.hpp"
#include "actors/generator_actor.hpp"
#include "actors/generator_pool.hpp"
#include "actors/grpo_policy.hpp"
#include "actors/policy_setup.hpp"
#include "actors/guardrail_actor.hpp"
#include "actors/lm_guard_model.hpp"
#include "actors/message_types.hpp"
#include "actors/remote_kinds.hpp"
#include "actors/reward_actor.hpp"
#include "actors/supervisor.hpp"
#include "actors/trainer_actor_spawn.hpp"
#include "core/hash.hpp"
#include "core/net.hpp"
#include "core/progress.hpp"
#include "core/stop.hpp"
#include "environments/task_source.hpp"
#include "policies/advantages.hpp"
#include "policies/chat_template.hpp"
#include "policies/checkpoint.hpp"
#include "policies/tokenizer.hpp"

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr auto long_wait = std::chrono::minutes(30);  // one actor call; a hang becomes an error

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}


// One completion and everything judged about it.
struct rollout {
  const task* t = nullptr;
  std::vector<std::int32_t> prompt;
  // The completion. Multi-turn: every action and, between them, the environment's
  // observations; gen.text is then the actions alone (what the rails judge), the
  // logprobs are 0 at observation tokens, and `mask` says which tokens are the policy's.
  gen_result gen;
  std::vector<float> mask;  // empty: all of the completion is the policy's
  std::string transcript;   // for logs: the completion as text, observations included
  std::int64_t episode_id = -1;
  std::uint64_t seed = 0;
  episode_result episode;
  std::vector<rail_verdict> verdicts;
  reward_result reward;
};

// The experiment's state and stages. The coordinator is the scoped actor `self`; each
// stage sends its requests first and then collects the answers, so the actors behind
// them work concurrently.
class grpo_run {
 public:
  explicit grpo_run(experiment_context& ctx) : ctx_(ctx), cfg_(ctx.config), self_(ctx.sys) {}

  experiment_outcome run();
  experiment_outcome evaluate_weights(const std::string& dir, std::int64_t step);

 private:
  void setup();
  void join_cluster();
  caf::actor place_env_hosts(const env_host_options& local);
  caf::actor place_generators(causal_lm local_copy);
  void place_trainer_ranks(trainer_actor_options& rank0);
  // Every trainer rank gets the message (each its shard of a batch); rank 0's answer.
  template <class T, class Batch, class Atom>
  T train_all(Atom atom, Batch batch, std::vector<Batch> (*shard)(const Batch&, int));
  template <class T, class... Ts>
  T ask_all(Ts... xs);
  template <class T, class F>
  T ask_ranks(F&& ask_rank0);
  template <class T>
  void collect_ranks(std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>>& others);
  void sft_stage();
  std::map<std::string, double> grpo_step(std::int64_t step);
  void evaluate(std::int64_t step);
  void checkpoint(std::int64_t step);
  std::int64_t restore(const checkpoint_row& c);
  void shutdown();

  // Generation requested and not yet collected. `tasks` lives on the heap so that the
  // rollouts' task pointers survive moves; async GRPO keeps up to max_staleness of
  // these in flight while the trainer updates.
  struct sample_request {
    std::unique_ptr<std::vector<task>> tasks;
    std::vector<rollout> rollouts;  // prompts filled in, generations not yet
    double temperature = 1.0;
    std::optional<caf::response_handle<caf::blocking_actor, caf::message, true>> handle;
  };
  sample_request request_samples(std::vector<task> tasks, std::int64_t per_task, double temperature, std::uint64_t salt);
  std::vector<rollout> collect(sample_request& req);
  bool multi_turn() const { return cfg_.env.max_turns > 1; }
  void play(std::vector<rollout>& rs, double temperature);
  std::vector<std::int32_t> encode_observation(const std::string& text) const;
  double success(const rollout& r) const;
  sample_request request_step(std::int64_t step);
  bool sync_point(std::int64_t step) const;
  void judge(std::vector<rollout>& rs);
  void score(std::vector<rollout>& rs);
  void publish_weights();
  void log(std::int64_t step, const std::map<std::string, double>& metrics);
  void log_rollouts(std::int64_t step, const std::vector<rollout>& rs);
  std::vector<std::int32_t> encode_prompt(const std::string& text) const;
  std::vector<observation> observe(const std::vector<task>& tasks);
  std::int64_t eval_count() const;

  template <class T, class... Ts>
  T ask(const caf::actor& who, Ts&&... xs) {
    T out{};
    caf::error err;
    self_->request(who, long_wait, std::forward<Ts>(xs)...).receive([&](T& x) { out = std::move(x); },
                                                                    [&](caf::error& e) { err = std::move(e); });
    if (err) throw system_error(render(err));
    return out;
  }

  experiment_context& ctx_;
  const experiment_config& cfg_;
  caf::scoped_actor self_;
  std::shared_ptr<const tokenizer> tok_;
  std::unique_ptr<task_source> tasks_;
  caf::actor env_, rails_, reward_, generator_, trainer_;
  // Scale-out (cluster.workers): the head's side of the cluster, and the trainer ranks
  // beyond rank 0 (trainer_) with the worker each runs on.
  std::unique_ptr<cluster_head> head_;
  std::vector<std::pair<caf::actor, std::string>> ranks_;
  caf::actor guard_model_;  // for rails that ask a model; none when no rail does
  std::int64_t cursor_ = 0;  // next SFT train task; then the first GRPO one
  std::string initial_weights_;  // a model directory the policy starts from (troupe eval)
  chat_format chat_ = chat_format::plain;  // how prompts are formatted
  std::int64_t next_episode_ = 0;          // multi-turn episode ids
  std::int64_t pad_id_ = 0;
  std::int64_t last_eval_ = -1, last_checkpoint_ = -1;  // GRPO steps done last
  struct inflight_step {
    std::int64_t step;
    sample_request req;
  };
  std::deque<inflight_step> inflight_;  // generation requested ahead (async GRPO)
};

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

  env_host_options eo;
  eo.env = cfg_.env.name;
  eo.options = cfg_.env.options;
  eo.pool = static_cast<int>(cfg_.env.pool);
  eo.episode_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(cfg_.env.episode_timeout_s * 1000));
  eo.step_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(cfg_.env.step_timeout_s * 1000));
  eo.store = ctx_.store;
  if (!cfg_.cluster.workers.empty()) join_cluster();
  env_ = place_env_hosts(eo);
  // Crashed rails or reward actors come back (with an event); the episodes they were
  // judging fail and the step goes on.
  auto supervised = [this](const char* name, std::function<caf::actor(caf::actor_system&)> make) {
    // Config errors surface here, as input errors, not as restarts; the probe then stops.
    self_->send_exit(make(ctx_.sys), caf::exit_reason::user_shutdown);
    supervisor_spec spec;
    spec.name = name;
    spec.factory = [make](caf::event_based_actor* sup) { return make(sup->system()); };
    spec.store = ctx_.store;
    return spawn_supervisor(ctx_.sys, std::move(spec));
  };
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

// The head waits for every worker of cluster.workers (docs/cluster.md); their actors are
// placed by the place_* functions below.
void grpo_run::join_cluster() {
  const auto& c = cfg_.cluster;
  head_ = std::make_unique<cluster_head>(ctx_.sys, c);
  head_->forward_events_to(ctx_.store);
  std::vector<std::string> names;
  std::string list;
  for (const auto& w : c.workers) {
    names.push_back(w.name);
    list += (list.empty() ? "" : ", ") + w.name;
  }
  ctx_.out << "cluster: waiting for " << list << " (troupe worker --join " << head_->endpoint() << " --name NAME)\n";
  head_->wait_for(names);
  ctx_.out << "cluster: every worker joined\n";
}

// Where the head's links to workers meet: the weight links of remote generators and the
// trainer ranks' rendezvous listen on the head's cluster address.
std::string link_host(const cluster_section& c) {
  const auto host = parse_host_port(c.listen, "cluster.listen", true).host;
  if (host == "0.0.0.0" || host == "::")
    throw input_error("cluster.listen: '" + c.listen + "' is a wildcard; name the address workers reach the head at " +
                      "(weight links and the trainer ranks' rendezvous listen there too)");
  return host;
}

// Trainer ranks in all: the head's rank 0 and those of cluster.workers.
int trainer_world(const cluster_section& c) {
  int world = 1;
  for (const auto& w : c.workers) world += w.trainer_ranks;
  return world;
}

// Env hosts: the local one, or those of cluster.workers behind a pool that hands a lost
// worker's episodes to the others (actors/actor_pool.hpp).
caf::actor grpo_run::place_env_hosts(const env_host_options& local) {
  std::vector<pool_member> members;
  if (head_)
    for (const auto& w : cfg_.cluster.workers)
      for (int i = 0; i < w.env_hosts; ++i) members.push_back({head_->spawn(w.name, "env_host", env_host_payload(cfg_.env)), w.name});
  if (members.empty()) return spawn_env_host(ctx_.sys, local);
  return spawn_env_pool(ctx_.sys, {std::move(members), ctx_.store});
}

// Generators: the local copy, or those of cluster.workers behind a generator pool, each
// with its own weight link (actors/generator_pool.hpp).
caf::actor grpo_run::place_generators(causal_lm local_copy) {
  std::vector<generator_member> members;
  if (head_) {
    const auto host = link_host(cfg_.cluster);
    for (const auto& w : cfg_.cluster.workers)
      for (int i = 0; i < w.generators; ++i) {
        weight_link link;
        link.host = host;
        link.port = free_tcp_port(host);
        link.timeout_s = cfg_.cluster.spawn_timeout_s;
        link.transport = cfg_.weight_sync.transport;
        members.push_back({{head_->spawn(w.name, "generator", remote_generator_payload(cfg_, link)), w.name}, link});
      }
  }
  if (members.empty()) return spawn_generator(ctx_.sys, local_copy, tok_, 0);
  return spawn_generator_pool(ctx_.sys, {std::move(members), ctx_.store});
}

// Data-parallel trainer ranks (docs/data-parallel.md): rank 0 is this process's trainer,
// ranks 1.. run on the workers that cluster.workers gives trainer_ranks. They meet when
// the first trainer message arrives.
void grpo_run::place_trainer_ranks(trainer_actor_options& rank0) {
  if (!head_) return;
  const int world = trainer_world(cfg_.cluster);
  if (world == 1) return;
  data_parallel_options dp;
  dp.world_size = world;
  dp.host = link_host(cfg_.cluster);
  dp.port = free_tcp_port(dp.host);
  rank0.data_parallel = dp;
  const auto config_text = write_config(cfg_);
  for (const auto& w : cfg_.cluster.workers)
    for (int i = 0; i < w.trainer_ranks; ++i) {
      auto o = dp;
      o.rank = static_cast<int>(ranks_.size()) + 1;
      ranks_.emplace_back(head_->spawn(w.name, "trainer_rank", trainer_rank_payload_text(config_text, o)), w.name);
    }
}

template <class T, class Batch, class Atom>
T grpo_run::train_all(Atom atom, Batch batch, std::vector<Batch> (*shard)(const Batch&, int)) {
  if (ranks_.empty()) return ask<T>(trainer_, atom, std::move(batch));
  auto shards = shard(batch, static_cast<int>(ranks_.size()) + 1);
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> others;
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
    throw system_error(std::string("data-parallel training failed: ") + e.what() + "; the run stops at its last checkpoint" +
                       (last_checkpoint_ >= 0 ? " (GRPO step " + std::to_string(last_checkpoint_) + ")" : std::string()) +
                       ": troupe run --resume " + ctx_.run_path + " continues once every worker of cluster.workers has joined again");
  }
}

template <class T>
void grpo_run::collect_ranks(std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>>& others) {
  for (std::size_t k = 0; k < others.size(); ++k) {
    caf::error err;
    others[k].receive([](T&) {}, [&](caf::error& e) { err = std::move(e); });
    if (err)
      throw system_error("trainer rank " + std::to_string(k + 1) + " (worker " + ranks_[k].second + "): " + render(err));
  }
}

template <class T, class... Ts>
T grpo_run::ask_all(Ts... xs) {
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> others;
  for (const auto& r : ranks_) others.push_back(self_->request(r.first, long_wait, xs...));
  auto out = ask_ranks<T>([&] { return ask<T>(trainer_, xs...); });
  collect_ranks<T>(others);
  return out;
}

// The task's prompt as one user turn in the policy's chat format; plain text (the
// small char models) gets BOS in front instead, as in pretraining.
std::vector<std::int32_t> grpo_run::encode_prompt(const std::string& text) const {
  std::vector<std::int32_t> ids;
  if (chat_ == chat_format::plain) {
    if (tok_->bos_id()) ids.push_back(*tok_->bos_id());
    for (auto id : tok_->encode(text)) ids.push_back(id);
    return ids;
  }
  for (auto id : tok_->encode(format_chat(chat_, {{"user", text}}, /*add_generation_prompt=*/true))) ids.push_back(id);
  return ids;
}

// The environment's first observation of each task: the prompt text and where the
// policy's answer stops. Asked of the env host's instances, all at once.
std::vector<observation> grpo_run::observe(const std::vector<task>& tasks) {
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> pending;
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
    std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> pending;
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
    std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> pending;
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
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> pending;
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
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> checks;
  for (auto& r : rs) checks.push_back(self_->request(rails_, long_wait, check_atom::value, rail_stage::output, r.gen.text));
  // A rail or reward that fails on one episode fails that episode, not the run.
  auto fail = [](rollout& r, const std::string& why) {
    if (!r.episode.failed) r.episode.error = why;
    r.episode.failed = true;
  };
  for (std::size_t i = 0; i < rs.size(); ++i)
    checks[i].receive([&](std::vector<rail_verdict>& v) { rs[i].verdicts = std::move(v); },
                      [&](caf::error& err) { fail(rs[i], "guardrail: " + render(err)); });
  std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> scores;
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

grpo_run::sample_request grpo_run::request_step(std::int64_t step) {
  const auto& g = cfg_.grpo;
  std::vector<task> tasks;
  for (std::int64_t i = 0; i < g.prompts_per_step; ++i)
    tasks.push_back(tasks_->at(split::train, cursor_ + step * g.prompts_per_step + i));
  return request_samples(std::move(tasks), g.group_size, g.temperature, 0x5a17 + static_cast<std::uint64_t>(step) * 7919);
}

std::map<std::string, double> grpo_run::grpo_step(std::int64_t step) {
  const auto& g = cfg_.grpo;
  const auto t0 = clock_type::now();
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

  auto t = clock_type::now();
  auto rs = collect(req);
  const double generate_s = seconds_since(t);  // the part of generation this step waited for
  t = clock_type::now();
  judge(rs);
  const double env_s = seconds_since(t);
  t = clock_type::now();
  score(rs);
  const double reward_s = seconds_since(t);

  // Advantages over each prompt's group (P, G).
  std::vector<double> totals;
  double correct = 0, failed = 0, new_tokens = 0;
  for (const auto& r : rs) {
    totals.push_back(r.reward.total);
    correct += success(r);
    failed += r.episode.failed ? 1 : 0;
    new_tokens += static_cast<double>(r.gen.tokens.size());
  }
  auto rewards = torch::tensor(totals, torch::kFloat64).view({g.prompts_per_step, g.group_size});
  auto adv = compute_advantages(g.advantages, rewards).flatten().contiguous();
  rollout_batch batch;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    batch.prompts.push_back(rs[i].prompt);
    batch.completions.push_back(rs[i].gen.tokens);
    batch.gen_logprobs.push_back(rs[i].gen.logprobs);
    batch.advantages.push_back(adv[static_cast<std::int64_t>(i)].item<double>());
    batch.versions.push_back(rs[i].gen.weight_version);
  }
  // Loss masks: multi-turn rows hide the observations; with guardrails.on_block: mask,
  // a blocked completion is hidden whole (it still counted in its group's advantages).
  double masked = 0;
  const bool mask_blocked = cfg_.guardrails.on_block == "mask";
  if (multi_turn() || mask_blocked) {
    for (const auto& r : rs) {
      auto m = r.mask.empty() ? std::vector<float>(r.gen.tokens.size(), 1.0f) : r.mask;
      const bool blocked = std::any_of(r.verdicts.begin(), r.verdicts.end(),
                                       [](const rail_verdict& v) { return v.action == rail_action::block; });
      if (mask_blocked && blocked) {
        std::fill(m.begin(), m.end(), 0.0f);
        ++masked;
      }
      batch.completion_masks.push_back(std::move(m));
    }
  }
  t = clock_type::now();
  // Every completion masked (all blocked): nothing to learn from, no update.
  auto m = masked == static_cast<double>(rs.size())
             ? std::map<std::string, double>{{"train/skipped", 1.0}}
             : train_all<std::map<std::string, double>>(train_atom::value, std::move(batch), &shard_rollout_batch);
  const double train_s = seconds_since(t);
  t = clock_type::now();
  publish_weights();
  const double sync_s = seconds_since(t);

  const double n = static_cast<double>(rs.size());
  const double step_s = seconds_since(t0);
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
  for (std::int64_t k = 0; k <= g.max_staleness; ++k) m["train/staleness/" + std::to_string(k)] = staleness[k];
  m["train/staleness_mean"] = staleness_sum / n;
  // Per rail: the share of this step's completions it triggered on (any action but
  // allow). Every rail reports each step, 0 included, so the curve has no holes.
  std::map<std::string, double> triggered;
  for (const auto& r : rs)
    for (const auto& v : r.verdicts) triggered[v.rail] += v.action == rail_action::allow ? 0.0 : 1.0;
  for (const auto& [rail, count] : triggered) m["rails/" + rail + "/trigger_rate"] = count / n;
  m["train/staleness_max"] = staleness_max;
  m["train/reward_mean"] = rewards.mean().item<double>();
  m["train/accuracy"] = correct / n;
  m["train/failed_episodes"] = failed;
  if (mask_blocked) m["train/masked_rollouts"] = masked;
  m["train/new_tokens_per_s"] = new_tokens / step_s;  // of step wall time, comparable sync vs async
  m["time/step_s"] = step_s;
  m["time/generate_s"] = generate_s;
  m["time/env_s"] = env_s;
  m["time/reward_s"] = reward_s;
  m["time/train_s"] = train_s;
  m["time/sync_s"] = sync_s;
  m["time/coordination_s"] = step_s - generate_s - env_s - reward_s - train_s - sync_s;
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
  for (auto* a : {&env_, &rails_, &guard_model_, &reward_, &generator_, &trainer_})
    if (*a) self_->send_exit(*a, caf::exit_reason::user_shutdown);
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

}  // namespace

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
