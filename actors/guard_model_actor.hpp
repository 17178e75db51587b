// The guard-model actor: a language model that rails ask (guardrails/model_interfaces.hpp),
// as an actor, so that the rails of a guardrail actor (and its restarts) share one model
// that lives outside them. It wraps any logprob_scorer / guard_model (in training, the
// LibTorch model of actors/policy/lm_guard_model.hpp; in tests, a fake) and answers one request
// at a time on its own thread (detached: a model call is seconds of computing).
//
// Protocol:
//   (logprobs_atom, std::string text)   -> std::vector<double>  logprob_scorer::token_logprobs
//   (answer_atom, std::string prompt)   -> std::string           guard_model::answer
// A call that throws answers an error with the exception's text; the actor goes on.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <memory>

#include "guardrails/model_interfaces.hpp"

namespace troupe {

// Either may be null: its requests are then answered with an error.
caf::actor spawn_guard_model_actor(caf::actor_system& sys, std::shared_ptr<logprob_scorer> scorer,
                                   std::shared_ptr<guard_model> guard);

// The rails' side: a scorer and a guard model whose calls are requests to `model` (a
// guard-model actor). Each call waits at most `wait`; the rails bound it by their own,
// shorter `timeout_ms` and apply fail-closed / fail-open. With no `model` (an invalid
// handle) every call throws.
rail_services guard_model_services(caf::actor_system& sys, const caf::actor& model,
                                   std::chrono::milliseconds wait = std::chrono::minutes(10));

}  // namespace troupe
