// Compiled, never run, by the ctest entries protocol.typed_interfaces_*
// (tests/actors/protocol/typed_protocol_check.py). TROUPE_PROBE picks what it asks:
//   0  each typed actor a question of its own interface, its reply read as its type:
//      must compile (the control: the other two fail for the reason they name)
//   1  the reward actor a generator's question: must not compile (request() has no
//      overload for a message outside the interface)
//   2  the trainer's weights read as metrics: must not compile (the reply's type)
#include <caf/all.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "actors/actor_pool.hpp"
#include "actors/protocol/env_host.hpp"
#include "actors/protocol/generator.hpp"
#include "actors/protocol/guardrail.hpp"
#include "actors/protocol/message_types.hpp"  // inspect(): what a request serializes
#include "actors/protocol/reward.hpp"
#include "actors/protocol/trainer.hpp"

namespace troupe {

constexpr auto wait = std::chrono::seconds(1);

void probe(caf::scoped_actor& self, const generator_actor& gen, const trainer_actor& trainer,
           const env_host_actor& env, const reward_actor& reward, const guardrail_actor& rails,
           const env_pool_actor& pool) {
  auto ignore = [](caf::error&) {};
#if TROUPE_PROBE == 0
  self->request(gen, wait, generate_atom::value, std::vector<gen_request>{}).receive([](std::vector<gen_result>&) {}, ignore);
  self->request(gen, wait, status_atom::value).receive([](std::int64_t) {}, ignore);
  self->request(trainer, wait, train_atom::value, rollout_batch{}).receive([](train_metrics&) {}, ignore);
  self->request(trainer, wait, eval_atom::value, token_rows{}).receive([](train_metrics&) {}, ignore);
  self->request(trainer, wait, weights_atom::value).receive([](weight_update&) {}, ignore);
  self->request(trainer, wait, load_atom::value, std::string(), std::string()).receive([](std::int64_t) {}, ignore);
  self->request(env, wait, step_atom::value, std::int64_t{1}, std::string("a")).receive([](step_result&) {}, ignore);
  self->request(env, wait, judge_atom::value, episode_request{}).receive([](episode_result&) {}, ignore);
  self->request(reward, wait, score_atom::value, reward_request{}).receive([](reward_result&) {}, ignore);
  self->request(rails, wait, check_atom::value, rail_stage::output, std::string("x"))
    .receive([](std::vector<rail_verdict>&) {}, ignore);
  self->request(pool, wait, status_atom::value).receive([](std::vector<std::string>&) {}, ignore);
  const env_host_actor as_host = pool;  // a pool is an env host to its callers
  (void)as_host;
#elif TROUPE_PROBE == 1
  self->request(reward, wait, generate_atom::value, std::vector<gen_request>{});
#elif TROUPE_PROBE == 2
  self->request(trainer, wait, weights_atom::value).receive([](train_metrics&) {}, ignore);
#endif
  (void)gen, (void)trainer, (void)env, (void)reward, (void)rails, (void)pool, (void)ignore;
}

}  // namespace troupe
