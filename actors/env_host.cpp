#include "actors/env_host.hpp"

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/errors.hpp"
#include "actors/message_types.hpp"
#include "core/error.hpp"

namespace troupe {

namespace {

// One instance, one episode at a time. Detached: an environment may block (a tool, a
// process) without holding a scheduler thread.
caf::behavior env_worker(caf::event_based_actor* self, std::shared_ptr<environment> env) {
  convert_exceptions(self);
  return {
    [env](judge_atom, const episode_request& req) {
      episode_result out;
      out.task_id = req.t.id;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        env->reset(req.t);
        out.verdict = env->step(req.action);
      } catch (const std::exception& e) {
        out.failed = true;
        out.error = e.what();
      }
      out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      return out;
    },
    [env](reset_atom, const task& t) { return env->reset(t); },
  };
}

struct host_state {
  std::vector<caf::actor> workers;
  std::size_t next = 0;
  std::chrono::milliseconds timeout{30000};
  static inline const char* name = "troupe.env_host";
};

caf::behavior env_host(caf::stateful_actor<host_state>* self, env_host_options opts) {
  for (int i = 0; i < opts.pool; ++i)
    self->state.workers.push_back(self->spawn<caf::detached + caf::linked>(
      env_worker, std::shared_ptr<environment>(make_environment(opts.env, opts.options))));
  self->state.timeout = opts.episode_timeout;
  auto pick = [self] {
    auto& st = self->state;
    return st.workers[st.next++ % st.workers.size()];
  };
  return {
    [self, pick](judge_atom, episode_request& req) -> caf::result<episode_result> {
      auto rp = self->make_response_promise<episode_result>();
      const std::string id = req.t.id;
      self->request(pick(), self->state.timeout, judge_atom::value, std::move(req))
        .then([rp](episode_result& r) mutable { rp.deliver(std::move(r)); },
              [rp, id](caf::error& err) mutable {
                episode_result r;
                r.task_id = id;
                r.failed = true;
                r.error = render(err);
                rp.deliver(std::move(r));
              });
      return rp;
    },
    [self, pick](reset_atom, task& t) { return self->delegate(pick(), reset_atom::value, std::move(t)); },
  };
}

}  // namespace

caf::actor spawn_env_host(caf::actor_system& sys, const env_host_options& opts) {
  if (opts.pool < 1) throw input_error("env.pool: must be >= 1");
  make_environment(opts.env, opts.options);  // fail here, on the caller's thread, for bad names or options
  return sys.spawn(env_host, opts);
}

}  // namespace troupe
