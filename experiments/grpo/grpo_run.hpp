// The GRPO experiment's coordinator, shared by the files that implement it (internal to
// them; experiments/grpo/grpo.hpp is the interface):
//   grpo.cpp            setup, the SFT and GRPO stages, the step, checkpoints, validation
//   grpo_rollouts.cpp   prompts, generation requests, multi-turn episodes, judging,
//                       rewards and dynamic sampling
//   grpo_placement.cpp  where actors run when cluster.workers is set (docs/cluster.md)
#pragma once

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "actors/actor_pool.hpp"
#include "actors/protocol/atoms.hpp"
#include "distributed/cluster.hpp"
#include "distributed/data_parallel.hpp"
#include "actors/env_host.hpp"
#include "actors/protocol/errors.hpp"
#include "experiments/experiment.hpp"
#include "actors/policy/generator_actor.hpp"
#include "actors/policy/generator_pool.hpp"
#include "experiments/grpo/grpo_policy.hpp"
#include "experiments/setup/policy_setup.hpp"
#include "actors/guardrail_actor.hpp"
#include "actors/policy/lm_guard_model.hpp"
#include "actors/protocol/message_types.hpp"
#include "experiments/grpo/remote_kinds.hpp"
#include "actors/reward_actor.hpp"
#include "actors/supervisor.hpp"
#include "actors/policy/trainer_actor.hpp"
#include "core/hash.hpp"
#include "core/net.hpp"
#include "core/progress.hpp"
#include "core/stop.hpp"
#include "environments/task_source.hpp"
#include "algorithms/advantages.hpp"
#include "policies/tokenizers/chat_template.hpp"
#include "policies/checkpoint.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe::grpo_detail {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;
constexpr auto long_wait = std::chrono::minutes(30);  // one actor call; a hang becomes an error

// A request to a typed actor (actors/protocol/) whose answer is a T, not yet received:
// its receive() takes a handler of T and does not compile with another.
template <class T>
using pending_reply = caf::response_handle<caf::blocking_actor, caf::detail::type_list<T>, true>;

inline double seconds_since(clock_type::time_point t0) {
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
  env_host_actor place_env_hosts(const env_host_options& local);
  generator_actor place_generators(causal_lm local_copy);
  void place_trainer_ranks(trainer_actor_options& rank0);
  // Every trainer rank gets the message (each its shard of a batch); rank 0's answer.
  template <class T, class Batch, class Atom>
  T train_all(Atom atom, Batch batch, std::vector<Batch> (*shard)(const Batch&, int));
  template <class T, class... Ts>
  T ask_all(Ts... xs);
  template <class T, class F>
  T ask_ranks(F&& ask_rank0);
  template <class T>
  void collect_ranks(std::vector<pending_reply<T>>& others);
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
    std::optional<pending_reply<std::vector<gen_result>>> handle;
  };
  sample_request request_samples(std::vector<task> tasks, std::int64_t per_task, double temperature, std::uint64_t salt);
  std::vector<rollout> collect(sample_request& req);
  bool multi_turn() const { return cfg_.env.max_turns > 1; }
  void play(std::vector<rollout>& rs, double temperature);
  std::vector<std::int32_t> encode_observation(const std::string& text) const;
  double success(const rollout& r) const;
  sample_request request_step(std::int64_t step);
  bool sync_point(std::int64_t step) const;
  // What a step sampled, over every generation batch (dynamic sampling may draw more
  // than it trains on).
  struct sample_stats {
    double rollouts = 0, reward = 0, correct = 0, failed = 0, new_tokens = 0;
    void add(const grpo_run& run, const std::vector<rollout>& rs);
  };
  std::vector<rollout> keep_varied_groups(std::int64_t step, std::vector<rollout> first,
                                          std::vector<sample_request>& rounds, sample_stats& sampled,
                                          std::map<std::string, double>& m);
  void judge(std::vector<rollout>& rs);
  void score(std::vector<rollout>& rs);
  // grpo_step's stages besides those: the step's generation request (async GRPO keeps
  // later ones in flight), the trainer's batch, the metrics of the rollouts.
  sample_request take_step_request(std::int64_t step);
  struct trainable_batch {
    rollout_batch batch;  // advantages over each prompt's group, loss masks
    double masked = 0;    // completions hidden whole (guardrails.on_block: mask)
  };
  trainable_batch build_rollout_batch(const std::vector<rollout>& rs) const;
  void add_rollout_metrics(std::int64_t step, const std::vector<rollout>& rs, const sample_stats& sampled,
                           std::map<std::string, double>& m) const;
  void publish_weights();
  void log(std::int64_t step, const std::map<std::string, double>& metrics);
  void log_rollouts(std::int64_t step, const std::vector<rollout>& rs);
  std::vector<std::int32_t> encode_prompt(const std::string& text) const;
  std::vector<observation> observe(const std::vector<task>& tasks);
  std::int64_t eval_count() const;

  template <class T, class Handle, class... Ts>
  T ask(const Handle& who, Ts&&... xs) {
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
  env_host_actor env_;
  guardrail_actor rails_;
  reward_actor reward_;
  generator_actor generator_;
  trainer_actor trainer_;
  // Scale-out (cluster.workers): the head's side of the cluster, and the trainer ranks
  // beyond rank 0 (trainer_) with the worker each runs on.
  std::unique_ptr<cluster_head> head_;
  std::vector<std::pair<trainer_actor, std::string>> ranks_;
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

// Where the head's links to workers meet (refuses a wildcard address), and the trainer
// ranks of a cluster section (1 + every worker's trainer_ranks).
std::string link_host(const cluster_section& c);
int trainer_world(const cluster_section& c);

}  // namespace troupe::grpo_detail
