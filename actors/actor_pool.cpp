#include "actors/actor_pool.hpp"

#include <algorithm>

#include "actors/env_host.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/store_actor.hpp"

namespace troupe {

member_set::member_set(std::string kind, std::vector<pool_member> members, caf::actor store)
    : kind_(std::move(kind)), members_(std::move(members)), live_(members_.size(), true), store_(std::move(store)) {}

std::vector<std::size_t> member_set::live_members() const {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < members_.size(); ++i)
    if (live_[i]) out.push_back(i);
  return out;
}

std::optional<std::size_t> member_set::next() {
  for (std::size_t k = 0; k < members_.size(); ++k) {
    const auto i = (cursor_ + k) % members_.size();
    if (live_[i]) {
      cursor_ = i + 1;
      return i;
    }
  }
  return std::nullopt;
}

std::string member_set::describe(std::size_t i) const {
  const auto& w = members_[i].where;
  return kind_ + " " + std::to_string(i) + (w == "local" ? std::string(" (local)") : " (worker " + w + ")");
}

std::uint64_t member_set::book(std::size_t m, std::function<void()> retry) {
  const auto id = ++next_id_;
  owed_.emplace(id, owed{m, std::move(retry)});
  return id;
}

bool member_set::settle(std::uint64_t id) { return owed_.erase(id) > 0; }

void member_set::lose(caf::event_based_actor* self, std::size_t m, const std::string& reason) {
  if (!live_[m]) return;
  live_[m] = false;
  // Taken out first: the retries book new requests while they run.
  std::vector<std::function<void()>> retries;
  for (auto it = owed_.begin(); it != owed_.end();) {
    if (it->second.member == m) {
      retries.push_back(std::move(it->second.retry));
      it = owed_.erase(it);
    } else {
      ++it;
    }
  }
  const auto left = live_members().size();
  auto source = kind_ + "_pool";  // "env_host_pool", "generator_pool"
  std::replace(source.begin(), source.end(), ' ', '_');
  const auto message = describe(m) + " lost (" + reason + "); " + std::to_string(retries.size()) +
                       " unanswered request(s) go to the " + std::to_string(left) + " left";
  record_event(self, store_, event_row{wall_clock_now(), "lost", source, message});
  for (auto& r : retries) r();
}

std::optional<std::size_t> member_set::find(const caf::actor_addr& a) const {
  for (std::size_t i = 0; i < members_.size(); ++i)
    if (members_[i].actor.address() == a) return i;
  return std::nullopt;
}

bool member_gone(const caf::error& err) {
  if (err.category() == caf::atom("exit")) return true;  // exit reasons: the actor is down
  if (err.category() == caf::atom("system"))
    return err == caf::sec::request_receiver_down || err == caf::sec::no_route_to_receiving_node ||
           err == caf::sec::socket_disconnected || err == caf::sec::cannot_forward_to_invalid_actor;
  return false;
}

namespace {

template <class T>
struct result_of {
  using type = T;
};

struct env_pool_state {
  member_set set;
  std::map<std::int64_t, std::size_t> episodes;  // multi-turn episode id -> its member
  static inline const char* name = "troupe.env_pool";
};

caf::behavior env_pool(caf::stateful_actor<env_pool_state>* self, env_pool_options opts) {
  self->state.set = member_set("env host", opts.members, opts.store);
  for (const auto& m : opts.members) self->monitor(m.actor);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (auto m = self->state.set.find(dm.source))
      self->state.set.lose(self, *m, dm.reason ? render(dm.reason) : std::string("it stopped"));
  });
  // Round robin with fail-over, for requests any member can answer.
  auto any = [self](auto result_tag, auto... xs) {
    using result = typename decltype(result_tag)::type;
    auto rp = self->template make_response_promise<result>();
    auto m = self->state.set.next();
    if (!m) {
      rp.deliver(make_error(errc::worker_failed, "every env host of the pool was lost"));
      return rp;
    }
    pool_request<result>(
      self, self->state.set, *m, false, [rp](result& r) mutable { rp.deliver(std::move(r)); },
      [rp](caf::error err) mutable { rp.deliver(std::move(err)); }, xs...);
    return rp;
  };
  // To the member that opened the episode.
  // An episode ends with a step that is done, with close, or with an error: then the
  // pool forgets it (the host has let it go).
  auto sticky = [self](std::int64_t id, auto result_tag, auto ends, auto... xs) {
    using result = typename decltype(result_tag)::type;
    auto rp = self->template make_response_promise<result>();
    auto it = self->state.episodes.find(id);
    if (it == self->state.episodes.end()) {
      rp.deliver(make_error(errc::bad_input, "env pool: no open episode " + std::to_string(id)));
      return rp;
    }
    const auto m = it->second;
    if (!self->state.set.live(m)) {
      rp.deliver(make_error(errc::worker_failed, "episode " + std::to_string(id) + ": its " +
                                                   self->state.set.describe(m) + " was lost"));
      return rp;
    }
    pool_request<result>(
      self, self->state.set, m, true,
      [rp, self, id, ends](result& r) mutable {
        if (ends(r)) self->state.episodes.erase(id);
        rp.deliver(std::move(r));
      },
      [rp, m, self, id](caf::error err) mutable {
        self->state.episodes.erase(id);
        rp.deliver(member_gone(err) || err.code() == static_cast<std::uint8_t>(errc::worker_failed)
                     ? make_error(errc::worker_failed, "the episode's " + self->state.set.describe(m) + " was lost")
                     : std::move(err));
      },
      xs...);
    return rp;
  };
  return {
    [any](reset_atom a, const task& t) { return any(result_of<observation>{}, a, t); },
    [any](judge_atom a, const episode_request& r) { return any(result_of<episode_result>{}, a, r); },
    [self](open_atom a, std::int64_t id, const task& t) {
      auto rp = self->make_response_promise<observation>();
      auto m = self->state.set.next();
      if (!m) {
        rp.deliver(make_error(errc::worker_failed, "every env host of the pool was lost"));
        return rp;
      }
      self->state.episodes[id] = *m;
      // Not retried elsewhere: an episode lives on one instance from its first
      // observation on, and a lost one fails (its group keeps its size).
      pool_request<observation>(
        self, self->state.set, *m, true, [rp](observation& o) mutable { rp.deliver(std::move(o)); },
        [rp, self, id](caf::error err) mutable {
          self->state.episodes.erase(id);
          rp.deliver(std::move(err));
        },
        a, id, t);
      return rp;
    },
    [sticky](step_atom a, std::int64_t id, const std::string& action) {
      return sticky(id, result_of<step_result>{}, [](const step_result& r) { return r.done; }, a, id, action);
    },
    [sticky](close_atom a, std::int64_t id) { return sticky(id, result_of<bool>{}, [](bool) { return true; }, a, id); },
    [self](status_atom) {
      std::vector<std::string> out;
      for (auto i : self->state.set.live_members()) out.push_back(self->state.set[i].where);
      return out;
    },
  };
}

}  // namespace

env_pool_actor spawn_env_pool(caf::actor_system& sys, env_pool_options opts) {
  if (opts.members.empty()) throw input_error("env pool: no env hosts");
  // An untyped stand-in (its members come from the cluster as plain handles, and it
  // retries their requests generically), which answers the env host's interface and
  // its status: the cast is what the protocol promises.
  return caf::actor_cast<env_pool_actor>(sys.spawn(env_pool, std::move(opts)));
}

}  // namespace troupe
