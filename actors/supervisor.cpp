#include "actors/supervisor.hpp"

#include <caf/all.hpp>

#include <deque>
#include <memory>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/store_actor.hpp"

namespace troupe {

namespace {

struct supervisor_state {
  supervisor_spec spec;
  // Shared with the exit hook below, which must reach the child after the state is gone.
  std::shared_ptr<caf::actor> child = std::make_shared<caf::actor>();
  std::deque<std::chrono::steady_clock::time_point> recent;  // restart times within window
  int restarts = 0;
  static inline const char* name = "troupe.supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

void record(supervisor_actor* self, const std::string& kind, const std::string& message) {
  record_event(self, self->state.spec.store, event_row{wall_clock_now(), kind, self->state.spec.name, message});
}

void start_child(supervisor_actor* self) {
  caf::actor child = self->state.spec.factory(self);
  self->monitor(child);
  *self->state.child = child;
}

caf::behavior supervisor(supervisor_actor* self, supervisor_spec spec) {
  self->state.spec = std::move(spec);
  start_child(self);
  // Whatever ends the supervisor ends its child too.
  self->attach_functor([child = self->state.child] {
    if (*child) caf::anon_send_exit(*child, caf::exit_reason::user_shutdown);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (dm.source != st.child->address()) return;  // an old child's late notice
    if (!dm.reason || dm.reason == caf::exit_reason::user_shutdown) {  // a clean stop
      self->quit();
      return;
    }
    auto now = std::chrono::steady_clock::now();
    while (!st.recent.empty() && now - st.recent.front() > st.spec.window) st.recent.pop_front();
    if (static_cast<int>(st.recent.size()) >= st.spec.max_restarts) {
      auto why = st.spec.name + " crashed " + std::to_string(st.recent.size() + 1) + " times within " +
                 std::to_string(st.spec.window.count()) + " ms (" + render(dm.reason) + "); giving up";
      record(self, "give_up", why);
      self->quit(make_error(errc::restart_limit, why));
      return;
    }
    st.recent.push_back(now);
    ++st.restarts;
    record(self, "restart",
           st.spec.name + " crashed (" + render(dm.reason) + "); restarted (" + std::to_string(st.restarts) + ")");
    start_child(self);
  });
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& msg) -> caf::result<caf::message> {
    return self->delegate(*self->state.child, msg.copy_content_to_message());
  });
  return {
    [self](restarts_atom) { return self->state.restarts; },
    [self](child_atom) { return *self->state.child; },
  };
}

}  // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_spec spec) {
  return sys.spawn(supervisor, std::move(spec));
}

}  // namespace troupe
