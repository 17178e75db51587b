// Every type that travels in a message, made serializable (CAF `inspect`) so an actor
// can move to another process without code changes, and registered in one place:
// register_message_types() is the only list. A type added to a protocol header must be
// added there too; the bootstrap test checks each one round-trips through a serializer.
#pragma once

#include <caf/actor_system_config.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <vector>

#include "actors/protocol/cluster.hpp"
#include "actors/protocol/env_host.hpp"
#include "actors/protocol/generator.hpp"
#include "actors/protocol/guardrail.hpp"
#include "actors/protocol/reward.hpp"
#include "actors/protocol/trainer.hpp"
#include "core/store.hpp"
#include "environments/environment.hpp"
#include "guardrails/rail.hpp"
#include "guardrails/rails_engine.hpp"

namespace troupe {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, metric_row& x) {
  return f(caf::meta::type_name("troupe::metric_row"), x.step, x.name, x.value, x.wall_time);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rollout_row& x) {
  return f(caf::meta::type_name("troupe::rollout_row"), x.step, x.prompt, x.completion, x.reward,
           x.rewards_json, x.verdicts_json, x.weight_version);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, checkpoint_row& x) {
  return f(caf::meta::type_name("troupe::checkpoint_row"), x.step, x.path, x.wall_time);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_row& x) {
  return f(caf::meta::type_name("troupe::event_row"), x.wall_time, x.kind, x.source, x.message);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task& x) {
  return f(caf::meta::type_name("troupe::task"), x.id, x.prompt, x.metadata);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, observation& x) {
  return f(caf::meta::type_name("troupe::observation"), x.text, x.stop_strings);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_result& x) {
  return f(caf::meta::type_name("troupe::step_result"), x.next, x.rewards, x.done, x.info);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, episode_request& x) {
  return f(caf::meta::type_name("troupe::episode_request"), x.t, x.action);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, episode_result& x) {
  return f(caf::meta::type_name("troupe::episode_result"), x.task_id, x.verdict, x.failed, x.error, x.seconds);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rail_verdict& x) {
  return f(caf::meta::type_name("troupe::rail_verdict"), x.rail, x.action, x.penalty, x.reason, x.note);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rail_decision& x) {
  return f(caf::meta::type_name("troupe::rail_decision"), x.rail, x.type, x.action, x.reason, x.note, x.latency_ms,
           x.stopped);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rails_result& x) {
  return f(caf::meta::type_name("troupe::rails_result"), x.stage, x.action, x.text, x.refusal, x.verdicts, x.penalty,
           x.log, x.latency_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, rail_counter& x) {
  return f(caf::meta::type_name("troupe::rail_counter"), x.rail, x.stage, x.checks, x.triggers);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reward_request& x) {
  return f(caf::meta::type_name("troupe::reward_request"), x.env, x.verdicts, x.failed);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reward_result& x) {
  return f(caf::meta::type_name("troupe::reward_result"), x.components, x.total);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, worker_facts& x) {
  return f(caf::meta::type_name("troupe::worker_facts"), x.name, x.host, x.pid, x.cores, x.cuda_devices, x.protocol,
           x.join_secret);
}

void register_message_types(caf::actor_system_config& cfg);

}  // namespace troupe
