// The store actor: the one writer of a run's SQLite store. Other actors send it what
// the run should remember; it runs detached (its own thread), so disk waits never stall
// the scheduler's workers.
//
// Protocol (all requests answer once the rows are committed, so a caller that awaits
// the answer knows its data survives a crash):
//   (metrics_atom, std::vector<metric_row>)   -> bool    one transaction
//   (rollouts_atom, std::vector<rollout_row>) -> bool    one transaction
//   (ckpt_atom, checkpoint_row)               -> bool
//   (event_atom, event_row)                   -> bool
//   (status_atom, std::string status)         -> bool    sets runs.status and ended_at
//                                                        (unless status is "running")
//   (flush_atom)                              -> bool    answered after every message
//                                                        that reached the actor before it
// A write that fails answers errc::system_failure naming the store file.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/fwd.hpp>

#include <chrono>

#include "actors/protocol/atoms.hpp"

#include "actors/protocol/message_types.hpp"  // inspect() for the rows below
#include "core/store.hpp"

namespace troupe {

caf::actor spawn_store_actor(caf::actor_system& sys, run_store store);

// Records `row` through the store actor `store` (nothing when it is invalid), from
// actor `self`, without waiting: a lost event must not stall the actor that saw it.
// A request, not a send: the store's answer comes back as a response, never as an
// ordinary message (a supervisor would forward that to its child). `Self`: any
// event-based actor, typed (an env host) or not.
template <class Self>
void record_event(Self* self, const caf::actor& store, event_row row) {
  if (!store) return;
  self->request(store, std::chrono::seconds(30), event_atom::value, std::move(row)).then([](bool) {}, [](caf::error&) {});
}

}  // namespace troupe
