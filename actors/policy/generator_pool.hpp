// Several generators behind one address (actors/actor_pool.hpp): a generate batch is
// split into contiguous parts, one per live generator, and the answers are put back in
// request order; a lost generator's parts go to the others. Each request carries its own
// seed, so which generator samples it changes nothing but floating-point rounding.
//
// Weights: a weight_update goes to in-process members as the message itself; a member on
// a cluster worker gets (weights_atom, version) and receives the tensors over a two-rank
// link whose rank 0 the pool holds, created at the first update: c10d Gloo, or NCCL with
// weight_sync.transport: nccl (open_link_end, weights/weight_transport.hpp). Links are one per remote generator, so a lost worker breaks only its own.
//
// Protocol: that of actors/protocol/generator.hpp (generate, weights, status).
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <optional>
#include <string>
#include <vector>

#include "actors/actor_pool.hpp"
#include "actors/protocol/generator.hpp"
#include "weights/weight_sync.hpp"

namespace troupe {

struct generator_member {
  pool_member member;
  std::optional<weight_link> link;  // unset: in process
};

struct generator_pool_options {
  std::vector<generator_member> members;
  caf::actor store;  // for `lost` events; may be invalid
};

// Torch side (the pool sends the tensors over the links).
generator_actor spawn_generator_pool(caf::actor_system& sys, generator_pool_options opts);

}  // namespace troupe
