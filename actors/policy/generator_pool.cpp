#include "actors/policy/generator_pool.hpp"

#include <caf/all.hpp>

#include <memory>

#include "actors/protocol/generator.hpp"
#include "actors/protocol/message_types.hpp"
#include "weights/weight_snapshot.hpp"
#include "weights/weight_transport.hpp"

namespace troupe {

namespace {

struct generator_pool_state {
  member_set set;
  std::vector<std::optional<weight_link>> links;
  std::vector<std::unique_ptr<weight_transport>> senders;  // rank 0 of each link, once made
  std::int64_t version = 0;
  static inline const char* name = "troupe.generator_pool";
};

using pool_actor = caf::stateful_actor<generator_pool_state>;

// The tensors of member m's link, sent; false when the link failed (m is then lost).
bool send_over_link(pool_actor* self, std::size_t m, const weight_update& u) {
  auto& st = self->state;
  try {
    if (!st.senders[m]) {  // waits for the member's rank 1
      const auto& first = u.weights->tensors.front();  // nccl: the trainer's device
      st.senders[m] = open_link_end(*st.links[m], 0, first.is_cuda() ? first.get_device() : 0);
    }
    named_tensors weights;
    for (std::size_t i = 0; i < u.weights->names.size(); ++i) weights.insert(u.weights->names[i], u.weights->tensors[i]);
    st.senders[m]->send(u.version, weights);
    return true;
  } catch (const std::exception& e) {
    st.senders[m].reset();
    st.set.lose(self, m, std::string("weight link: ") + e.what());
    return false;
  }
}

caf::behavior generator_pool(pool_actor* self, generator_pool_options opts) {
  std::vector<pool_member> members;
  for (const auto& g : opts.members) {
    members.push_back(g.member);
    self->state.links.push_back(g.link);
    self->monitor(g.member.actor);
  }
  self->state.senders.resize(members.size());
  self->state.set = member_set("generator", std::move(members), opts.store);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (auto m = self->state.set.find(dm.source))
      self->state.set.lose(self, *m, dm.reason ? render(dm.reason) : std::string("it stopped"));
  });
  return {
    [self](generate_atom a, std::vector<gen_request>& reqs) {
      using results = std::vector<gen_result>;
      auto rp = self->make_response_promise<results>();
      const auto live = self->state.set.live_members();
      if (live.empty()) {
        rp.deliver(make_error(errc::worker_failed, "every generator of the pool was lost"));
        return rp;
      }
      struct job {
        results out;
        std::size_t left = 0;
        bool failed = false;
      };
      auto j = std::make_shared<job>();
      const auto n = reqs.size();
      j->out.resize(n);
      const auto k = std::min(live.size(), n);
      j->left = k;
      if (k == 0) rp.deliver(results{});
      for (std::size_t p = 0; p < k; ++p) {
        const auto begin = n * p / k, end = n * (p + 1) / k;
        std::vector<gen_request> part(std::make_move_iterator(reqs.begin() + static_cast<std::ptrdiff_t>(begin)),
                                      std::make_move_iterator(reqs.begin() + static_cast<std::ptrdiff_t>(end)));
        pool_request<results>(
          self, self->state.set, live[p], false,
          [j, rp, begin](results& r) mutable {
            if (j->failed) return;
            for (std::size_t i = 0; i < r.size(); ++i) j->out[begin + i] = std::move(r[i]);
            if (--j->left == 0) rp.deliver(std::move(j->out));
          },
          [j, rp](caf::error err) mutable {
            if (j->failed) return;
            j->failed = true;
            rp.deliver(std::move(err));
          },
          a, std::move(part));
      }
      return rp;
    },
    [self](weights_atom a, const weight_update& u) {
      auto rp = self->make_response_promise<std::int64_t>();
      auto& st = self->state;
      const auto live = st.set.live_members();
      if (live.empty()) {
        rp.deliver(make_error(errc::worker_failed, "every generator of the pool was lost"));
        return rp;
      }
      auto left = std::make_shared<std::size_t>(live.size());
      auto counted = std::make_shared<std::vector<bool>>(st.set.size(), false);
      auto failed = std::make_shared<bool>(false);
      const auto version = u.version;
      // A member that is lost on the way needs no weights: it counts as done (once, though
      // both its link and its answer may report the loss).
      auto done = [left, counted, failed, rp, version](std::size_t m) mutable {
        if ((*counted)[m]) return;
        (*counted)[m] = true;
        if (!*failed && --*left == 0) rp.deliver(version);
      };
      auto answer = [self, done, failed, rp](std::size_t m) mutable {
        return [self, m, done, failed, rp](caf::error& err) mutable {
          if (member_gone(err) || !self->state.set.live(m)) {
            self->state.set.lose(self, m, render(err));
            return done(m);
          }
          if (!*failed) rp.deliver(std::move(err));
          *failed = true;
        };
      };
      for (auto m : live) {
        auto ok = [done, m](std::int64_t) mutable { done(m); };
        if (!st.links[m]) {
          self->request(st.set[m].actor, std::chrono::minutes(60), a, u).then(ok, answer(m));
          continue;
        }
        // The member waits in its receive while this sends; both sides block on the link.
        self->request(st.set[m].actor, std::chrono::minutes(60), a, version).then(ok, answer(m));
        if (!send_over_link(self, m, u)) done(m);
      }
      st.version = version;
      return rp;
    },
    [self](status_atom) { return self->state.version; },
  };
}

}  // namespace

generator_actor spawn_generator_pool(caf::actor_system& sys, generator_pool_options opts) {
  if (opts.members.empty()) throw input_error("generator pool: no generators");
  // Untyped inside (its members are plain handles from the cluster); it answers the
  // generator's interface, which is what the cast says.
  return caf::actor_cast<generator_actor>(sys.spawn<caf::detached>(generator_pool, std::move(opts)));
}

}  // namespace troupe
