#include "actors/store_actor.hpp"

#include <caf/all.hpp>

#include <iostream>
#include <memory>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"

namespace troupe {

namespace {

// Runs one store operation, turning its exception into the reply's error.
template <class F>
caf::result<bool> guarded(F&& f) {
  try {
    f();
    return true;
  } catch (...) {
    return from_exception(std::current_exception());
  }
}

caf::behavior store_actor(caf::event_based_actor* self, std::shared_ptr<run_store> store) {
  // A stray error message (someone else's failed reply) must not end the run's only
  // writer: report it and go on.
  self->set_error_handler([](caf::error& err) { std::cerr << "troupe: store actor ignored " << render(err) << '\n'; });
  return {
    [store](metrics_atom, const std::vector<metric_row>& rows) {
      return guarded([&] { store->log_metrics(rows); });
    },
    [store](rollouts_atom, const std::vector<rollout_row>& rows) {
      return guarded([&] { store->log_rollouts(rows); });
    },
    [store](ckpt_atom, const checkpoint_row& row) { return guarded([&] { store->record_checkpoint(row); }); },
    [store](event_atom, const event_row& row) { return guarded([&] { store->log_event(row); }); },
    [](flush_atom) { return true; },  // writes are synchronous: all earlier ones are done
    [store](status_atom, const std::string& status) {
      return guarded([&] { store->set_status(status, status == "running" ? 0.0 : wall_clock_now()); });
    },
  };
}

}  // namespace

caf::actor spawn_store_actor(caf::actor_system& sys, run_store store) {
  // shared_ptr: a CAF behavior must be copyable, the store is move-only.
  return sys.spawn<caf::detached>(store_actor, std::make_shared<run_store>(std::move(store)));
}

}  // namespace troupe
