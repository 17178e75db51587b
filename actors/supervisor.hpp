// A supervisor owns one child actor and stands in for it: every message sent to the
// supervisor is delegated to the current child, so callers keep one handle for the
// child's whole life. When the child terminates abnormally (an exception in a handler,
// an error exit), the supervisor records an `event` row ("restart") through the store
// actor and spawns a fresh child from the factory. A request the crashed child was
// handling fails with the child's exit reason; requests the supervisor takes after it
// has handled the child's down message reach the new child. Between the crash and that
// moment a request can still be delegated to the dead child and fail
// (request_receiver_down): a caller that must not lose one waits for the new child
// first (child_atom names it).
//
// Restarts are limited: more than `max_restarts` within `window` and the supervisor
// gives up, records a "give_up" event and exits with errc::restart_limit, which reaches
// whoever monitors or links to it (the coordinator), so the run stops with a reason
// instead of looping.
//
// Extra protocol of the supervisor itself:
//   (restarts_atom) -> int           restarts so far
//   (child_atom)    -> caf::actor    the current child (tests)
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <chrono>
#include <functional>
#include <string>

namespace troupe {

struct supervisor_spec {
  std::string name;  // names the child in events, e.g. "smoke-worker-0"
  // Spawns the child; called with the supervisor as `self` (use self->spawn).
  std::function<caf::actor(caf::event_based_actor* self)> factory;
  int max_restarts = 3;
  std::chrono::milliseconds window{std::chrono::seconds(60)};
  caf::actor store;  // the store actor for event rows; may be invalid (no rows)
};

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_spec spec);

// A supervisor over the actor `make(sys)` spawns, named `name` in events sent to
// `store`. `make` runs once first, outside the supervisor, so that a bad config surfaces
// now as the caller's input error instead of as restarts; that probe is then stopped.
//
// The handle has the type `make` returns, a typed interface (reward_actor, ...) or
// caf::actor. The supervisor itself is untyped, since it stands in for any child; it
// delegates every message to the child, so it answers the child's interface, which is
// what the cast to it says.
template <class Make>
auto spawn_supervised(caf::actor_system& sys, const std::string& name, const caf::actor& store, Make make)
    -> decltype(make(sys)) {
  caf::anon_send_exit(make(sys), caf::exit_reason::user_shutdown);
  supervisor_spec spec;
  spec.name = name;
  spec.factory = [make](caf::event_based_actor* sup) { return caf::actor_cast<caf::actor>(make(sup->system())); };
  spec.store = store;
  return caf::actor_cast<decltype(make(sys))>(spawn_supervisor(sys, std::move(spec)));
}

}  // namespace troupe
