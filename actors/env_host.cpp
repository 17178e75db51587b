#include "actors/env_host.hpp"

#include <caf/all.hpp>

#include <functional>
#include <map>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor.hpp"
#include "core/error.hpp"
#ifdef TROUPE_HAVE_EXTERNAL_ENV
#include "environments/external/external_env.hpp"
#endif

namespace troupe {

#ifdef TROUPE_HAVE_EXTERNAL_ENV
// The `external` environment registers itself when its library loads; calling into it
// keeps that library a dependency under --as-needed, so every env host (and the
// binary's config checks) can name it.
[[maybe_unused]] static const bool external_linked = external_environment_linked();
#endif

namespace {

// One instance, one episode at a time. Detached: an environment may block (a tool, a
// process) without holding a scheduler thread.
caf::behavior env_worker(caf::event_based_actor* self, std::shared_ptr<environment> env,
                         std::function<std::unique_ptr<environment>()> make) {
  convert_exceptions(self);
  // Multi-turn episodes: one instance each, from reset to done, so that an episode's
  // state never meets another's. A worker processes one message at a time.
  auto episodes = std::make_shared<std::map<std::int64_t, std::unique_ptr<environment>>>();
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
    [env](reset_atom, const task& t) -> caf::result<observation> {
      try {
        return env->reset(t);
      } catch (const std::exception& e) {  // a task it cannot start: an error, not a crash
        return make_error(errc::bad_input, e.what());
      }
    },
    [episodes, make](open_atom, std::int64_t id, const task& t) -> caf::result<observation> {
      try {
        auto instance = make();
        auto first = instance->reset(t);
        (*episodes)[id] = std::move(instance);
        return first;
      } catch (const std::exception& e) {
        return make_error(errc::bad_input, e.what());
      }
    },
    [episodes](step_atom, std::int64_t id, const std::string& action) -> caf::result<step_result> {
      auto it = episodes->find(id);
      if (it == episodes->end()) return make_error(errc::bad_input, "no open episode " + std::to_string(id));
      try {
        auto r = it->second->step(action);
        if (r.done) episodes->erase(it);
        return r;
      } catch (const std::exception& e) {
        episodes->erase(it);
        return make_error(errc::bad_input, e.what());
      }
    },
    [episodes](close_atom, std::int64_t id) {
      episodes->erase(id);
      return true;
    },
  };
}

struct host_state {
  std::vector<caf::actor> workers;  // supervisors, one per instance
  std::size_t next = 0;
  std::map<std::int64_t, std::size_t> episodes;  // open multi-turn episode -> its worker's slot
  env_host_options opts;
  int spawned = 0;  // names workers uniquely, replacements included
  static inline const char* name = "troupe.env_host";
};

using host_self = env_host_actor::stateful_pointer<host_state>;

// A worker under its own supervisor: an instance that crashes its actor (an exception
// that is not a std::exception, an error exit) is restarted with a fresh instance and
// an event row; past the restart limit the supervisor gives up and, being linked, takes
// the host down with errc::restart_limit, which ends the run with that reason.
caf::actor spawn_worker(host_self self) {
  auto& st = self->state;
  supervisor_spec spec;
  spec.name = "env-worker-" + std::to_string(st.spawned++) + " (" + st.opts.env + ")";
  spec.factory = [env = st.opts.env, options = st.opts.options](caf::event_based_actor* sup) {
    return sup->spawn<caf::detached>(env_worker, std::shared_ptr<environment>(make_environment(env, options)),
                                     [env, options] { return make_environment(env, options); });
  };
  spec.store = st.opts.store;
  auto sup = spawn_supervisor(self->system(), std::move(spec));
  self->link_to(sup);
  return sup;
}

// An episode that outlived its timeout leaves its worker stuck inside the environment,
// where no message reaches it: the slot gets a fresh worker, and the old one is told
// to exit, which it does once the environment returns (a thread stays blocked until
// then).
void replace_worker(host_self self, std::size_t slot, const caf::actor& stuck) {
  auto& st = self->state;
  if (st.workers[slot] != stuck) return;  // replaced already
  self->unlink_from(stuck);
  self->send_exit(stuck, caf::exit_reason::kill);
  st.workers[slot] = spawn_worker(self);
  record_event(self, st.opts.store,
               event_row{wall_clock_now(), "replace", "env_host",
                         "an episode of " + st.opts.env + " exceeded " + std::to_string(st.opts.episode_timeout.count()) +
                           " ms; its worker was replaced"});
}

// A judge request that reached a worker's supervisor after its instance crashed, but
// before the supervisor handled the crash, is delegated to the dead actor and bounces
// (request_receiver_down); it goes again to the same slot, whose supervisor has a fresh
// instance by the time it takes the next message. Bounded, in case it never does.
constexpr int max_bounces = 100;

void judge_on(host_self self, std::size_t slot, episode_request req, caf::typed_response_promise<episode_result> rp,
              int bounces_left) {
  const caf::actor worker = self->state.workers[slot];
  self->request(worker, self->state.opts.episode_timeout, judge_atom::value, req)
    .then([rp](episode_result& r) mutable { rp.deliver(std::move(r)); },
          [self, rp, req, slot, worker, bounces_left](caf::error& err) mutable {
            if (err == caf::sec::request_receiver_down && bounces_left > 0)
              return judge_on(self, slot, std::move(req), rp, bounces_left - 1);
            episode_result r;
            r.task_id = req.t.id;
            r.failed = true;
            r.error = render(err);
            if (err == caf::sec::request_timeout) {
              r.error = "episode timed out after " + std::to_string(self->state.opts.episode_timeout.count()) +
                        " ms (" + r.error + ")";
              replace_worker(self, slot, worker);
            }
            rp.deliver(std::move(r));
          });
}

env_host_actor::behavior_type env_host(host_self self, env_host_options opts) {
  self->state.opts = std::move(opts);
  for (int i = 0; i < self->state.opts.pool; ++i) self->state.workers.push_back(spawn_worker(self));
  return {
    [self](judge_atom, episode_request& req) -> caf::result<episode_result> {
      auto& st = self->state;
      auto rp = self->make_response_promise<episode_result>();
      judge_on(self, st.next++ % st.workers.size(), std::move(req), rp, max_bounces);
      return rp;
    },
    [self](reset_atom, task& t) -> caf::result<observation> {
      auto& st = self->state;
      auto rp = self->make_response_promise<observation>();
      self->request(st.workers[st.next++ % st.workers.size()], st.opts.step_timeout, reset_atom::value, std::move(t))
        .then([rp](observation& o) mutable { rp.deliver(std::move(o)); },
              [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    // Multi-turn: an episode stays on the worker that opened it.
    [self](open_atom, std::int64_t id, task& t) -> caf::result<observation> {
      auto& st = self->state;
      const std::size_t slot = st.next++ % st.workers.size();
      st.episodes[id] = slot;
      auto rp = self->make_response_promise<observation>();
      self->request(st.workers[slot], st.opts.step_timeout, open_atom::value, id, std::move(t))
        .then([rp](observation& o) mutable { rp.deliver(std::move(o)); },
              [self, rp, id](caf::error& err) mutable {
                self->state.episodes.erase(id);
                rp.deliver(std::move(err));
              });
      return rp;
    },
    [self](step_atom, std::int64_t id, std::string& action) -> caf::result<step_result> {
      auto& st = self->state;
      auto it = st.episodes.find(id);
      if (it == st.episodes.end()) return make_error(errc::bad_input, "env host: no open episode " + std::to_string(id));
      const std::size_t slot = it->second;
      const caf::actor worker = st.workers[slot];
      auto rp = self->make_response_promise<step_result>();
      self->request(worker, st.opts.step_timeout, step_atom::value, id, std::move(action))
        .then([self, rp, id](step_result& r) mutable {
                if (r.done) self->state.episodes.erase(id);
                rp.deliver(std::move(r));
              },
              [self, rp, id, slot, worker](caf::error& err) mutable {
                self->state.episodes.erase(id);
                if (err == caf::sec::request_timeout) replace_worker(self, slot, worker);
                rp.deliver(std::move(err));
              });
      return rp;
    },
    [self](close_atom, std::int64_t id) {
      auto& st = self->state;
      auto it = st.episodes.find(id);
      if (it != st.episodes.end()) {
        self->request(st.workers[it->second], std::chrono::seconds(30), close_atom::value, id)
          .then([](bool) {}, [](caf::error&) {});
        st.episodes.erase(it);
      }
      return true;
    },
  };
}

}  // namespace

env_host_options env_host_options_for(const env_section& env, const caf::actor& store) {
  env_host_options o;
  o.env = env.name;
  o.options = env.options;
  o.pool = static_cast<int>(env.pool);
  o.episode_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(env.episode_timeout_s * 1000));
  o.step_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(env.step_timeout_s * 1000));
  o.store = store;
  return o;
}

env_host_actor spawn_env_host(caf::actor_system& sys, const env_host_options& opts) {
  if (opts.pool < 1) throw input_error("env.pool: must be >= 1");
  make_environment(opts.env, opts.options);  // fail here, on the caller's thread, for bad names or options
  return sys.spawn(env_host, opts);
}

}  // namespace troupe
