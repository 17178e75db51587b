// The torch-side actors a cluster worker can be asked to spawn (docs/cluster.md), by
// kind name, each from a JSON payload the head writes:
//   "generator"  {"config": experiment config YAML, "link": {"host", "port", "timeout_s"}}
//                a generator of the config's policy whose weights arrive over a Gloo link
//                to the head's generator pool (actors/policy/generator_pool.hpp)
// This header does not include torch; the factories live in the torch plugin.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <string>

#include "actors/policy/generator_pool.hpp"

namespace troupe {

struct experiment_config;

caf::actor spawn_remote_generator(caf::actor_system& sys, const std::string& payload);

// The payload spawn_remote_generator reads.
std::string remote_generator_payload(const experiment_config& cfg, const weight_link& link);

}  // namespace troupe
