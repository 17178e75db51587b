// Several actors of one kind (generators, env hosts), in this process or on cluster
// workers (docs/cluster.md), behind one address. A request goes to a live member; when
// that member is lost (its actor goes down: a crash, a killed worker process, a dropped
// connection), every request it still owed is sent again to another live member, so the
// caller sees an answer, not the loss. Requests that only make sense on their member (the
// steps of a multi-turn episode) fail instead, with the loss as the reason.
//
// Why the pool watches `down` messages and not only errors: a request already being
// handled by a worker that dies gets no answer at all (only, much later, its timeout);
// the member's down message is what says it will never come.
//
// env pool protocol: that of actors/env_host.hpp, unchanged (reset, judge, open, step,
// close); reset and judge go round-robin and fail over, open picks a member that the
// episode's step and close then stick to.
//   (status_atom) -> std::vector<std::string>   the live members' `where`, in order
#pragma once

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/env_host.hpp"
#include "actors/protocol/errors.hpp"
#include "core/store.hpp"

namespace troupe {

struct pool_member {
  caf::actor actor;
  std::string where;  // "local" or the worker's name, for events and errors
};

// The members, which are live, and the requests each one still owes. Lives in a pooling
// actor's state; `lose` is called from its down handler and from failed requests.
class member_set {
 public:
  member_set() = default;
  member_set(std::string kind, std::vector<pool_member> members, caf::actor store);

  std::size_t size() const { return members_.size(); }
  const pool_member& operator[](std::size_t i) const { return members_[i]; }
  bool live(std::size_t i) const { return live_[i]; }
  std::vector<std::size_t> live_members() const;
  // Round robin over the live members; nullopt when none is left.
  std::optional<std::size_t> next();
  std::string describe(std::size_t i) const;  // "generator 1 (worker w1)"

  // Books a request to member m; `retry` runs if m is lost before it answers. Returns the
  // request's id for settle().
  std::uint64_t book(std::size_t m, std::function<void()> retry);
  // The answer of request `id` arrived: true if it still counts (false: its member was
  // lost meanwhile and the request already went elsewhere).
  bool settle(std::uint64_t id);
  // Member m is gone: marks it, records a `lost` event and re-runs the retries of every
  // request it owed. Idempotent.
  void lose(caf::event_based_actor* self, std::size_t m, const std::string& reason);
  // Which member an actor address is (down messages).
  std::optional<std::size_t> find(const caf::actor_addr& a) const;

 private:
  std::string kind_;
  std::vector<pool_member> members_;
  std::vector<bool> live_;
  caf::actor store_;
  std::size_t cursor_ = 0;
  std::uint64_t next_id_ = 0;
  struct owed {
    std::size_t member;
    std::function<void()> retry;
  };
  std::map<std::uint64_t, owed> owed_;
};

// Whether an error means the member itself is gone (as opposed to an answer it gave).
bool member_gone(const caf::error& err);

// Requests `xs...` of member m of `set` and hands the answer to `ok`; if m is lost before
// it answers, the request goes to the next live member (or, when `sticky`, `fail` gets
// the loss). Other errors go to `fail` unchanged.
template <class Result, class Self, class Ok, class Fail, class... Ts>
void pool_request(Self* self, member_set& set, std::size_t m, bool sticky, Ok ok, Fail fail, Ts... xs) {
  auto retry = [self, &set, sticky, ok, fail, xs...]() mutable {
    if (sticky) return fail(make_error(errc::worker_failed, "its member of the pool was lost"));
    auto next = set.next();
    if (!next) return fail(make_error(errc::worker_failed, "every member of the pool was lost"));
    pool_request<Result>(self, set, *next, sticky, ok, fail, xs...);
  };
  const auto id = set.book(m, retry);
  self->request(set[m].actor, std::chrono::minutes(60), xs...)
    .then(
      [&set, id, ok](Result& r) mutable {
        if (set.settle(id)) ok(r);
      },
      [self, &set, id, m, fail](caf::error& err) mutable {
        if (member_gone(err)) return set.lose(self, m, render(err));  // retries this one too
        if (set.settle(id)) fail(std::move(err));
      });
}

// The env host's interface and the pool's own question; it converts to env_host_actor.
using env_pool_actor = env_host_actor::extend<caf::replies_to<status_atom>::with<std::vector<std::string>>>;

struct env_pool_options {
  std::vector<pool_member> members;  // env host actors (actors/env_host.hpp)
  caf::actor store;                  // for `lost` events; may be invalid
};

env_pool_actor spawn_env_pool(caf::actor_system& sys, env_pool_options opts);

}  // namespace troupe
