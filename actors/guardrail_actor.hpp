// The guardrail actor: runs the rails of a stage (guardrails/rails_engine.hpp) on text,
// each rail as an actor of its own. A check fans out to the stage's rail actors at once;
// the first block raises the check's stop flag (rails that take long poll it and return
// early) and the check is answered at once, without waiting for the other rails: the
// log marks them "stopped". The result is built by rails_engine::combine, so the
// decision log, the per-rail counters and the one-pass masking are those of
// rails_engine::check.
//
// Protocol:
//   (check_atom, rail_stage, std::string text)   -> std::vector<rail_verdict>
//       one verdict per rail that ran to the end (not stopped), in rail order, allowed
//       ones included; what the GRPO coordinator and the reward actor use
//   (check_atom, detail_atom, rail_stage, std::string text) -> rails_result
//       the whole result: decision log (rail, reason, note, latency), final text, refusal
//   (counters_atom)                               -> std::vector<rail_counter>
//
// A rail actor that waits on a model (perplexity, self_check) is detached, as it may wait
// for its whole timeout; the others run on the scheduler. All are linked to the guardrail
// actor: stopping it stops them, and a rail actor that dies takes it down, for its
// supervisor to restart. A rail that throws on one text
// fails that check only, with the rail's name and the exception's text.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <memory>

#include "actors/protocol/guardrail.hpp"
#include "guardrails/rails_engine.hpp"

namespace troupe {

// The rails of `engine`'s file, as a guardrail actor.
guardrail_actor spawn_guardrail_actor(caf::actor_system& sys, std::shared_ptr<const rails_engine> engine);

// The rails of an experiment's `guardrails:` section (make_rails: the length rail, then
// the rails file's output rails). Rails that ask a model ask `model`, a guard-model
// actor (actors/guard_model_actor.hpp); without one, such rails are an input_error
// naming the rail.
guardrail_actor spawn_guardrail_actor(caf::actor_system& sys, const guardrails_section& cfg, const caf::actor& model = {});

// Checks a `guardrails:` section before a run exists: the rails file (rails that ask a
// model are built against a stand-in that is never called) and guardrails.model (a
// model directory with config.json). Throws input_error naming the key, file and rail.
void validate_guardrails(const guardrails_section& cfg);

}  // namespace troupe
