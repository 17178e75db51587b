#include "actors/guardrail_actor.hpp"

#include <caf/all.hpp>

#include <chrono>
#include <filesystem>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/guard_model_actor.hpp"
#include "actors/protocol/message_types.hpp"
#include "core/error.hpp"

namespace troupe::guardrail_detail {

// One rail's part of one check. In-process only: the text is shared, not copied per
// rail, and the stop flag is shared memory that every rail of the check polls.
struct rail_job {
  rail_stage stage = rail_stage::output;
  std::shared_ptr<const std::string> text;
  std::shared_ptr<stop_flag> stop;
};

}  // namespace troupe::guardrail_detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::guardrail_detail::rail_job)
// A rail's run carries its verdict whole (spans, refusal message), which only the
// guardrail actor of the same process reads.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::rail_run)

namespace troupe {

namespace {

using guardrail_detail::rail_job;
using clock_type = std::chrono::steady_clock;
constexpr auto rail_wait = std::chrono::minutes(30);  // a rail bounds its own model calls; this catches a hang

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

// A rail actor: one rail, one check at a time. A check whose flag is already up when it
// comes out of the mailbox is not run at all.
caf::behavior rail_actor(caf::event_based_actor* self, std::shared_ptr<const rails_engine> engine,
                         const configured_rail* r) {
  convert_exceptions(self);
  return {
    [engine, r](check_atom, const rail_job& job) -> caf::result<rail_run> {
      if (job.stop->load()) {
        rail_run out;
        out.verdict.rail = r->name();
        out.stopped = true;
        return out;
      }
      try {
        return run_rail(*r, job.stage, *job.text, *job.stop);
      } catch (const std::exception& e) {
        return make_error(errc::internal, "rail '" + r->name() + "': " + e.what());
      }
    },
  };
}

// A check in flight: the runs that came back, how many are still out, and whether it
// was answered (a block, an error, or the last run), after which late runs are dropped.
struct pending_check {
  rail_job job;
  std::vector<rail_run> runs;
  std::vector<bool> answered;
  std::size_t left = 0;
  bool done = false;
  clock_type::time_point t0 = clock_type::now();
};

struct guardrail_state {
  std::shared_ptr<const rails_engine> engine;
  std::vector<caf::actor> input, output;  // one rail actor per rail, in file order
  static inline const char* name = "guardrail";
};

using guardrail_self = guardrail_actor::stateful_pointer<guardrail_state>;

// Fans one check out to the stage's rail actors and calls `done` with the combined
// result once every rail answered, or at once when one blocks; `fail` on a rail's error.
template <class Done, class Fail>
void fan_out(guardrail_self self, rail_stage stage, std::string text, Done done, Fail fail) {
  const auto& st = self->state;
  const auto& rails = stage == rail_stage::input ? st.input : st.output;
  auto p = std::make_shared<pending_check>();
  p->job = {stage, std::make_shared<const std::string>(std::move(text)), std::make_shared<stop_flag>(false)};
  p->runs.resize(rails.size());
  p->answered.assign(rails.size(), false);
  p->left = rails.size();
  auto engine = st.engine;
  // Rails not heard from when the check is answered were cut short: their time is the
  // check's so far, and their verdicts (if they ever come) are dropped.
  auto finish = [engine, p, done]() mutable {
    p->done = true;
    p->job.stop->store(true);
    for (std::size_t i = 0; i < p->runs.size(); ++i)
      if (!p->answered[i]) {
        p->runs[i].stopped = true;
        p->runs[i].latency_ms = ms_since(p->t0);
      }
    auto res = engine->combine(p->job.stage, *p->job.text, std::move(p->runs));
    res.latency_ms = ms_since(p->t0);
    done(std::move(res));
  };
  if (rails.empty()) {
    finish();
    return;
  }
  for (std::size_t i = 0; i < rails.size(); ++i)
    self->request(rails[i], rail_wait, check_atom::value, p->job)
      .then(
        [p, i, finish](rail_run& run) mutable {
          if (p->done) return;
          p->answered[i] = true;
          const bool blocked = run.verdict.action == rail_action::block && !run.stopped;
          p->runs[i] = std::move(run);
          --p->left;
          if (blocked || p->left == 0) finish();
        },
        [p, fail](caf::error& err) mutable {
          if (p->done) return;
          p->done = true;
          p->job.stop->store(true);  // the check failed: the other rails may stop too
          fail(std::move(err));
        });
}

// What the GRPO coordinator gets: a verdict per rail that ran to the end, allowed ones
// included (each rail's trigger rate counts every completion it judged).
std::vector<rail_verdict> verdicts_of(rails_result& res) {
  std::vector<rail_verdict> out;
  std::size_t next = 0;  // res.verdicts holds the triggered ones, in the log's order
  for (const auto& d : res.log) {
    if (d.stopped) continue;
    if (d.action != rail_action::allow && next < res.verdicts.size() && res.verdicts[next].rail == d.rail) {
      out.push_back(std::move(res.verdicts[next++]));
      continue;
    }
    rail_verdict v;
    v.rail = d.rail;
    v.note = d.note;
    out.push_back(std::move(v));
  }
  return out;
}

guardrail_actor::behavior_type guardrail_behavior(guardrail_self self, std::shared_ptr<const rails_engine> engine) {
  convert_exceptions(self);
  auto& st = self->state;
  st.engine = engine;
  // A rail that waits on a model gets a thread of its own; the others compute, and run
  // on the scheduler's threads (a detached actor's wake-up costs more than their check).
  for (auto stage : {rail_stage::input, rail_stage::output})
    for (const auto& r : engine->file().rails(stage))
      (stage == rail_stage::input ? st.input : st.output)
        .push_back(r->calls_model() ? self->spawn<caf::detached + caf::linked>(rail_actor, engine, r.get())
                                    : self->spawn<caf::linked>(rail_actor, engine, r.get()));
  return {
    [self](check_atom, rail_stage stage, std::string& text) -> caf::result<std::vector<rail_verdict>> {
      auto rp = self->make_response_promise<std::vector<rail_verdict>>();
      fan_out(
        self, stage, std::move(text), [rp](rails_result res) mutable { rp.deliver(verdicts_of(res)); },
        [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](check_atom, detail_atom, rail_stage stage, std::string& text) -> caf::result<rails_result> {
      auto rp = self->make_response_promise<rails_result>();
      fan_out(
        self, stage, std::move(text), [rp](rails_result res) mutable { rp.deliver(std::move(res)); },
        [rp](caf::error err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [self](counters_atom) { return self->state.engine->counters(); },
  };
}

}  // namespace

guardrail_actor spawn_guardrail_actor(caf::actor_system& sys, std::shared_ptr<const rails_engine> engine) {
  return sys.spawn(guardrail_behavior, std::move(engine));
}

guardrail_actor spawn_guardrail_actor(caf::actor_system& sys, const guardrails_section& cfg, const caf::actor& model) {
  const rail_services services = model ? guard_model_services(sys, model) : rail_services{};
  return spawn_guardrail_actor(sys, std::make_shared<const rails_engine>(make_rails(cfg, services)));
}

void validate_guardrails(const guardrails_section& cfg) {
  if (!cfg.model.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(std::filesystem::path(cfg.model) / "config.json", ec))
      throw input_error("guardrails.model: '" + cfg.model + "' is not a model directory (no config.json)");
  }
  rails_need_model(cfg);  // builds every rail, model rails against a stand-in model
}

}  // namespace troupe
