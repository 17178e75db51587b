#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/store_actor.hpp"
#include "actors/supervisor.hpp"
#include "actors/system.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

using namespace std::chrono_literals;

// Answers (work, xs) with the sum; (crash) throws.
caf::behavior flaky_worker(caf::event_based_actor* self) {
  convert_exceptions(self);
  return {
    [](work_atom, const std::vector<std::int64_t>& xs) {
      std::int64_t s = 0;
      for (auto x : xs) s += x;
      return s;
    },
    [](crash_atom) -> std::int64_t { throw std::runtime_error("boom"); },
  };
}

struct fixture : ::testing::Test {
  fixture() {
    system_section s;
    s.threads = 2;
    configure_actor_system(cfg, s);
  }
  run_info info() {
    run_info i;
    i.name = i.experiment = "t";
    return i;
  }
  caf::actor_system_config cfg;
  testing::temp_dir dir;
};

supervisor_spec worker_spec(caf::actor store, int max_restarts = 3) {
  supervisor_spec spec;
  spec.name = "worker-0";
  spec.factory = [](caf::event_based_actor* self) { return self->spawn(flaky_worker); };
  spec.store = std::move(store);
  spec.max_restarts = max_restarts;
  return spec;
}

std::int64_t sum_via(caf::scoped_actor& self, const caf::actor& a) {
  std::int64_t out = -1;
  self->request(a, 5s, work_atom::value, std::vector<std::int64_t>{1, 2, 3})
    .receive([&](std::int64_t s) { out = s; }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  return out;
}

caf::actor child_of(caf::scoped_actor& self, const caf::actor& sup) {
  caf::actor out;
  self->request(sup, 5s, child_atom::value).receive([&](caf::actor c) { out = c; }, [](caf::error&) {});
  return out;
}

// Returns once the supervisor hands out a child other than `old`: it has handled old's
// down message and restarted. Each question is a round trip behind whatever the
// supervisor is doing, so this waits on its mailbox, not on a clock.
caf::actor await_restart(caf::scoped_actor& self, const caf::actor& sup, const caf::actor& old) {
  for (int i = 0; i < 100000; ++i)
    if (auto c = child_of(self, sup); c && c != old) return c;
  ADD_FAILURE() << "the supervisor never restarted its child";
  return {};
}

TEST_F(fixture, supervisor_restarts_a_crashed_child_and_records_an_event) {
  const auto path = dir / "s.sqlite";
  {
    caf::actor_system sys{cfg};
    auto store = spawn_store_actor(sys, run_store::create(path, info(), ""));
    auto sup = spawn_supervisor(sys, worker_spec(store));
    caf::scoped_actor self{sys};
    EXPECT_EQ(sum_via(self, sup), 6);

    const caf::actor first = child_of(self, sup);
    bool crash_failed = false;
    self->request(sup, 5s, crash_atom::value)
      .receive([](std::int64_t) {}, [&](caf::error& e) {
        crash_failed = true;
        EXPECT_NE(render(e).find("boom"), std::string::npos) << render(e);
      });
    EXPECT_TRUE(crash_failed) << "the crashing request must fail, not hang";

    // The restart happens on the down message.
    const caf::actor second = await_restart(self, sup, first);
    int restarts = 0;
    self->request(sup, 5s, restarts_atom::value).receive([&](int n) { restarts = n; }, [](caf::error&) {});
    EXPECT_EQ(restarts, 1);
    EXPECT_NE(first, second);
    EXPECT_EQ(sum_via(self, sup), 6) << "the fresh child answers through the same handle";

    self->send_exit(sup, caf::exit_reason::user_shutdown);
    self->wait_for(sup);
    self->request(store, 5s, flush_atom::value).receive([](bool) {}, [](caf::error&) {});
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }
  auto events = run_store::open(path, store_mode::read_only).events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, "restart");
  EXPECT_EQ(events[0].source, "worker-0");
  EXPECT_NE(events[0].message.find("boom"), std::string::npos) << events[0].message;
}

TEST_F(fixture, supervisor_gives_up_after_too_many_restarts_and_says_why) {
  const auto path = dir / "s.sqlite";
  {
    caf::actor_system sys{cfg};
    auto store = spawn_store_actor(sys, run_store::create(path, info(), ""));
    auto sup = spawn_supervisor(sys, worker_spec(store, /*max_restarts=*/2));
    caf::scoped_actor self{sys};
    self->monitor(sup);
    for (int i = 0; i < 3; ++i) {
      const caf::actor child = child_of(self, sup);
      self->request(sup, 5s, crash_atom::value).receive([](std::int64_t) {}, [](caf::error&) {});
      // The restart lands before the next crash, or the request may meet no child; the
      // third crash is one too many, and the supervisor goes down instead.
      if (i < 2) await_restart(self, sup, child);
    }
    caf::error reason;
    self->receive([&](caf::down_msg& dm) { reason = dm.reason; }, caf::after(5s) >> [] {});
    EXPECT_EQ(reason.category(), errc_category);
    EXPECT_EQ(static_cast<errc>(reason.code()), errc::restart_limit);
    self->request(store, 5s, flush_atom::value).receive([](bool) {}, [](caf::error&) {});
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }
  auto events = run_store::open(path, store_mode::read_only).events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kind, "restart");
  EXPECT_EQ(events[1].kind, "restart");
  EXPECT_EQ(events[2].kind, "give_up");
}

TEST_F(fixture, stopping_the_supervisor_stops_its_child) {
  caf::actor_system sys{cfg};
  auto sup = spawn_supervisor(sys, worker_spec(caf::actor{}));
  caf::scoped_actor self{sys};
  caf::actor child;
  self->request(sup, 5s, child_atom::value).receive([&](caf::actor c) { child = c; }, [](caf::error&) {});
  ASSERT_TRUE(child);
  self->monitor(child);
  self->send_exit(sup, caf::exit_reason::user_shutdown);
  bool child_down = false;
  self->receive([&](caf::down_msg&) { child_down = true; }, caf::after(5s) >> [] {});
  EXPECT_TRUE(child_down);
}

}  // namespace
}  // namespace troupe
