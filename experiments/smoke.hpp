// The smoke experiment: a real round trip through troupe's actor system, before any
// model exists. A coordinator actor sends work requests (random integer payloads) to
// supervised worker actors, checks every checksum that comes back, and logs per-step
// metrics to the store actor; optionally one worker is made to crash at a chosen step
// so the supervisor's restart (and its `event` row) is part of every smoke run.
//
// Metrics per step: smoke/requests, smoke/failed_requests, smoke/checksum_errors,
// smoke/round_trip_ms_mean, smoke/round_trip_ms_max, time/step_s.
#pragma once

#include "core/config_binding.hpp"

namespace troupe {

struct smoke_section {
  int steps = 20;              // coordinator steps
  int workers = 2;             // supervised worker actors
  int requests_per_step = 64;  // requests fanned out per step, round-robin over workers
  int payload = 256;           // integers per request
  int crash_at_step = -1;      // make worker 0 crash at this step; -1: never

  template <class V>
  void describe(V& v) {
    v.field("steps", steps, "coordinator steps", in_range(1, 1000000));
    v.field("workers", workers, "supervised worker actors", in_range(1, 1024));
    v.field("requests_per_step", requests_per_step, "requests per step", in_range(1, 1000000));
    v.field("payload", payload, "integers per request", in_range(0, 1 << 24));
    v.field("crash_at_step", crash_at_step, "step at which worker 0 crashes once; -1 never", at_least(-1));
  }
};

struct experiment_context;
struct experiment_outcome;

experiment_outcome run_smoke(experiment_context& ctx);

}  // namespace troupe
