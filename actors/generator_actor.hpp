// Spawning the generator actor (protocol: actors/generator.hpp). Torch side.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <memory>

#include "actors/generator.hpp"
#include "policies/causal_lm.hpp"
#include "policies/tokenizer.hpp"

namespace troupe {

// `model` becomes the generator's own copy (the caller must not keep training it);
// `tok` may be shared. `version` is the weight version `model` holds.
caf::actor spawn_generator(caf::actor_system& sys, causal_lm model, std::shared_ptr<const tokenizer> tok,
                           std::int64_t version);

}  // namespace troupe
