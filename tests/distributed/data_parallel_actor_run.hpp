// Runs `steps` GRPO updates through a trainer actor made by spawn_trainer_rank (the
// remote kind's entry point): each step sends this rank's shard of dp_rollouts(step)
// (shard_rollout_batch), then asks for the weights. world_size 1: the whole batch.
#pragma once

#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "distributed/data_parallel.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/system.hpp"
#include "weights/weight_snapshot.hpp"
#include "weights/weight_sync.hpp"
#include "core/error.hpp"
#include "tests/distributed/data_parallel_fixture.hpp"

namespace troupe::testing {

struct dp_actor_result {
  std::vector<torch::Tensor> params;
  std::map<std::string, double> metrics;  // the last step's
};

inline dp_actor_result dp_actor_run(const data_parallel_options& o, std::int64_t steps) {
  caf::actor_system_config cfg;
  configure_actor_system(cfg, system_section{});
  caf::actor_system sys(cfg);
  auto trainer = spawn_trainer_rank(sys, trainer_rank_payload_text(dp_actor_config_text(), o));
  caf::scoped_actor self(sys);
  dp_actor_result out;
  std::string failure;
  auto on_error = [&](caf::error& e) { failure = sys.render(e); };
  for (std::int64_t s = 0; s < steps && failure.empty(); ++s) {
    const auto shard = shard_rollout_batch(dp_rollouts(s), o.world_size)[static_cast<std::size_t>(o.rank)];
    self->request(trainer, std::chrono::seconds(300), train_atom::value, shard)
        .receive([&](std::map<std::string, double>& m) { out.metrics = m; }, on_error);
  }
  if (failure.empty())
    self->request(trainer, std::chrono::seconds(300), weights_atom::value)
        .receive([&](weight_update& u) { out.params = u.weights->tensors; }, on_error);
  self->send_exit(trainer, caf::exit_reason::user_shutdown);
  if (!failure.empty()) throw system_error("trainer actor: " + failure);
  return out;
}

}  // namespace troupe::testing
