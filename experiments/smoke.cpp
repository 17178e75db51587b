#include "experiments/smoke.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "experiments/experiment.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/supervisor.hpp"
#include "core/progress.hpp"
#include "core/stop.hpp"

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;
constexpr auto request_timeout = std::chrono::seconds(30);

// Worker protocol:
//   (work_atom, std::vector<int64_t> xs) -> int64_t   the sum of xs
//   (crash_atom)                         -> never     throws, to exercise supervision
caf::behavior smoke_worker(caf::event_based_actor* self) {
  convert_exceptions(self);
  return {
    [](work_atom, const std::vector<std::int64_t>& xs) {
      return std::accumulate(xs.begin(), xs.end(), std::int64_t{0});
    },
    [](crash_atom) -> std::int64_t { throw std::runtime_error("crash requested by the smoke experiment"); },
  };
}

// One step's tallies.
struct step_tally {
  int pending = 0;
  int failed = 0;
  int checksum_errors = 0;
  std::vector<double> round_trip_ms;
  clock_type::time_point started;
};

struct coordinator_state {
  smoke_section cfg;
  std::vector<caf::actor> workers;  // supervisors, one per worker
  caf::actor store;
  std::unique_ptr<progress> bar;
  std::mt19937_64 rng;
  int step = 0;
  step_tally tally;
  std::int64_t total_failed = 0;
  caf::response_promise done;
  static inline const char* name = "troupe.smoke.coordinator";
};

using coordinator_actor = caf::stateful_actor<coordinator_state>;

void run_step(coordinator_actor* self);

void finish(coordinator_actor* self, const std::string& status) {
  auto& st = self->state;
  if (st.bar) st.bar->finish();
  st.done.deliver(status);
  self->quit();
}

void end_step(coordinator_actor* self) {
  auto& st = self->state;
  auto& t = st.tally;
  double step_s = std::chrono::duration<double>(clock_type::now() - t.started).count();
  double mean = t.round_trip_ms.empty() ? 0.0
                  : std::accumulate(t.round_trip_ms.begin(), t.round_trip_ms.end(), 0.0) /
                      static_cast<double>(t.round_trip_ms.size());
  double max = t.round_trip_ms.empty() ? 0.0 : *std::max_element(t.round_trip_ms.begin(), t.round_trip_ms.end());
  const double now = wall_clock_now();
  std::vector<metric_row> rows = {
    {st.step, "smoke/requests", static_cast<double>(st.cfg.requests_per_step), now},
    {st.step, "smoke/failed_requests", static_cast<double>(t.failed), now},
    {st.step, "smoke/checksum_errors", static_cast<double>(t.checksum_errors), now},
    {st.step, "smoke/round_trip_ms_mean", mean, now},
    {st.step, "smoke/round_trip_ms_max", max, now},
    {st.step, "time/step_s", step_s, now},
  };
  st.total_failed += t.failed;
  // Wait for the store's commit before the next step: metrics are durable per step.
  self->request(st.store, request_timeout, metrics_atom::value, std::move(rows))
    .then(
      [self, mean](bool) {
        auto& s = self->state;
        ++s.step;
        if (s.bar) s.bar->update(s.step, {{"rtt_ms", mean}, {"failed", static_cast<double>(s.total_failed)}});
        run_step(self);
      },
      [self](caf::error& err) {
        self->state.done.deliver(make_error(errc::system_failure, "store: " + error_message(err)));
        self->quit();
      });
}

void send_work(coordinator_actor* self) {
  auto& st = self->state;
  st.tally = step_tally{};
  st.tally.started = clock_type::now();
  st.tally.pending = st.cfg.requests_per_step;
  std::uniform_int_distribution<std::int64_t> dist(-1000000, 1000000);
  for (int i = 0; i < st.cfg.requests_per_step; ++i) {
    std::vector<std::int64_t> xs(static_cast<std::size_t>(st.cfg.payload));
    for (auto& x : xs) x = dist(st.rng);
    const std::int64_t expected = std::accumulate(xs.begin(), xs.end(), std::int64_t{0});
    const auto sent = clock_type::now();
    const auto& worker = st.workers[static_cast<std::size_t>(i) % st.workers.size()];
    self->request(worker, request_timeout, work_atom::value, std::move(xs))
      .then(
        [self, expected, sent](std::int64_t sum) {
          auto& t = self->state.tally;
          t.round_trip_ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - sent).count());
          if (sum != expected) ++t.checksum_errors;
          if (--t.pending == 0) end_step(self);
        },
        [self](caf::error&) {
          auto& t = self->state.tally;
          ++t.failed;
          if (--t.pending == 0) end_step(self);
        });
  }
}

// Sends the step's work once worker 0's supervisor names a child other than `crashed`:
// it has then handled the crashed child's down message and restarted it. Work sent
// before that moment could still be delegated to the dead child and fail. Each question
// queues behind whatever the supervisor is doing, so this waits on it, not on a clock.
void send_work_after_restart(coordinator_actor* self, caf::actor crashed) {
  self->request(self->state.workers[0], request_timeout, child_atom::value)
    .then(
      [self, crashed](caf::actor child) {
        if (child == crashed) return send_work_after_restart(self, crashed);
        send_work(self);
      },
      [self](caf::error&) { send_work(self); });
}

void run_step(coordinator_actor* self) {
  auto& st = self->state;
  if (stop_requested()) return finish(self, "stopped");
  if (st.step >= st.cfg.steps) return finish(self, "finished");
  if (st.step == st.cfg.crash_at_step) {
    // The crash request fails (its handler throws); the supervisor restarts the worker
    // and the step's real work then goes to the fresh one.
    self->request(st.workers[0], request_timeout, child_atom::value)
      .then(
        [self](caf::actor crashing) {
          self->request(self->state.workers[0], request_timeout, crash_atom::value)
            .then([self, crashing](std::int64_t) { send_work_after_restart(self, crashing); },
                  [self, crashing](caf::error&) { send_work_after_restart(self, crashing); });
        },
        [self](caf::error&) { send_work(self); });
    return;
  }
  send_work(self);
}

caf::behavior coordinator(coordinator_actor* self, smoke_section cfg, std::vector<caf::actor> workers,
                          caf::actor store, std::uint64_t seed, progress_style style, std::ostream* out) {
  auto& st = self->state;
  st.cfg = cfg;
  st.workers = std::move(workers);
  st.store = std::move(store);
  st.rng.seed(seed);
  st.bar = std::make_unique<progress>("smoke", cfg.steps, style, *out);
  return {
    [self](start_atom) {
      self->state.done = self->make_response_promise();
      run_step(self);
      return self->state.done;
    },
  };
}

}  // namespace

experiment_outcome run_smoke(experiment_context& ctx) {
  const auto& cfg = ctx.config.smoke;
  std::vector<caf::actor> supervisors;
  for (int i = 0; i < cfg.workers; ++i) {
    supervisor_spec spec;
    spec.name = "smoke-worker-" + std::to_string(i);
    spec.factory = [](caf::event_based_actor* self) { return self->spawn(smoke_worker); };
    spec.store = ctx.store;
    supervisors.push_back(spawn_supervisor(ctx.sys, std::move(spec)));
  }
  auto coord = ctx.sys.spawn(coordinator, cfg, supervisors, ctx.store,
                             static_cast<std::uint64_t>(ctx.config.run.seed),
                             parse_progress_style(ctx.config.system.progress), &ctx.out);

  experiment_outcome outcome;
  caf::scoped_actor self{ctx.sys};
  self->request(coord, caf::infinite, start_atom::value)
    .receive([&](const std::string& status) { outcome.status = status; },
             [&](caf::error& err) {
               outcome.status = "failed";
               outcome.message = render(err);
             });
  for (auto& s : supervisors) self->send_exit(s, caf::exit_reason::user_shutdown);
  if (outcome.status == "finished")
    outcome.message = "smoke: " + std::to_string(cfg.steps) + " steps of " + std::to_string(cfg.requests_per_step) +
                      " requests through " + std::to_string(cfg.workers) + " supervised workers";
  else if (outcome.status == "stopped")
    outcome.message = "smoke: stopped on request";
  return outcome;
}

}  // namespace troupe
