// Spawning the generator actor (protocol: actors/protocol/generator.hpp). Torch side.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <functional>
#include <memory>

#include "actors/protocol/generator.hpp"
#include "weights/weight_transport.hpp"
#include "policies/causal_lm.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe {

// `model` becomes the generator's own copy (the caller must not keep training it);
// `tok` may be shared. `version` is the weight version `model` holds.
//
// `link`, when given, makes the weight link of a generator on a cluster worker
// (actors/policy/generator_pool.hpp): it is called at the first (weights_atom, int64 version)
// message, and that message and every later one receive the weights over it. The link's
// sender is the pool on the head.
using weight_link_factory = std::function<std::unique_ptr<weight_transport>()>;
generator_actor spawn_generator(caf::actor_system& sys, causal_lm model, std::shared_ptr<const tokenizer> tok,
                           std::int64_t version, weight_link_factory link = {});

}  // namespace troupe
