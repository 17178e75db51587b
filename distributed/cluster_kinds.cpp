// The kinds every worker offers without LibTorch: env hosts, reward and guardrail
// actors, built from the same config sections the head uses, sent as YAML text. A
// spawned actor travels to the head as a plain handle; the head casts it back to the
// interface its kind names (experiments/grpo/grpo_placement.cpp).
#include <caf/all.hpp>

#include <mutex>

#include "distributed/cluster.hpp"
#include "actors/env_host.hpp"
#include "actors/guardrail_actor.hpp"
#include "actors/reward_actor.hpp"
#include "actors/supervisor.hpp"
#include "core/config_binding.hpp"
#include "core/config_tree.hpp"

namespace troupe {

namespace {

// The payload of a "reward" spawn: the reward section and what a failed episode scores.
struct reward_payload_section {
  reward_section reward;
  double failure_reward = 0.0;
  template <class V>
  void describe(V& v) {
    v.field("reward", reward, "how reward components combine");
    v.field("failure_reward", failure_reward, "what a failed or blocked episode scores");
  }
};

template <class Section>
Section parse_payload(const std::string& kind, const std::string& payload) {
  const auto tree = parse_config_text(payload, "the " + kind + " spawn payload");
  if (tree.type == config_node::kind::null) return Section{};  // empty: all defaults
  return read_config<Section>(tree);
}

}  // namespace

void register_builtin_remote_kinds() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_remote_kind("env_host", remote_factory_ex([](const remote_spawn_context& ctx, const std::string& p) {
                           const auto env = parse_payload<env_section>("env_host", p);
                           // Events go to the head's registry, which forwards them.
                           return caf::actor_cast<caf::actor>(spawn_env_host(ctx.sys, env_host_options_for(env, ctx.events)));
                         }));
    register_remote_kind("reward", remote_factory_ex([](const remote_spawn_context& ctx, const std::string& p) {
                           const auto r = parse_payload<reward_payload_section>("reward", p);
                           // It restarts on the worker like in the head (experiments/grpo/grpo.cpp);
                           // its restart events go to the head.
                           return caf::actor_cast<caf::actor>(
                             spawn_supervised(ctx.sys, "reward", ctx.events, [r](caf::actor_system& sys) {
                               return spawn_reward_actor(sys, r.reward, r.failure_reward);
                             }));
                         }));
    register_remote_kind("guardrails", remote_factory_ex([](const remote_spawn_context& ctx, const std::string& p) {
                           const auto g = parse_payload<guardrails_section>("guardrails", p);
                           return caf::actor_cast<caf::actor>(spawn_supervised(
                             ctx.sys, "guardrails", ctx.events, [g](caf::actor_system& sys) { return spawn_guardrail_actor(sys, g); }));
                         }));
  });
}

std::string env_host_payload(const env_section& env) { return write_config(env); }

std::string reward_payload(const reward_section& reward, double failure_reward) {
  reward_payload_section p;
  p.reward = reward;
  p.failure_reward = failure_reward;
  return write_config(p);
}

std::string guardrails_payload(const guardrails_section& g) { return write_config(g); }

}  // namespace troupe
