#include <gtest/gtest.h>

#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/store_actor.hpp"
#include "actors/system.hpp"
#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

struct system_fixture {
  explicit system_fixture(int threads = 2) {
    system_section s;
    s.threads = threads;
    configure_actor_system(cfg, s);
  }
  caf::actor_system_config cfg;
};

TEST(actor_bootstrap, scheduler_threads_come_from_config) {
  system_fixture f(3);
  caf::actor_system sys{f.cfg};
  EXPECT_EQ(sys.scheduler().num_workers(), 3u);
  system_section automatic;
  EXPECT_GE(scheduler_threads(automatic), 1u);
}

TEST(actor_bootstrap, troupe_errors_render_with_their_category_and_context) {
  system_fixture f;
  caf::actor_system sys{f.cfg};
  auto err = make_error(errc::timeout, "generator did not answer");
  EXPECT_EQ(err.category(), caf::atom("troupe"));
  EXPECT_EQ(sys.render(err), "troupe: timeout (generator did not answer)");
  EXPECT_EQ(render(make_error(errc::restart_limit, "x")), "troupe: restart_limit (x)");
}

TEST(actor_bootstrap, exceptions_map_to_error_codes) {
  auto code = [](auto ex) { return static_cast<errc>(from_exception(std::make_exception_ptr(ex)).code()); };
  EXPECT_EQ(code(input_error("bad")), errc::bad_input);
  EXPECT_EQ(code(system_error("disk")), errc::system_failure);
  EXPECT_EQ(code(std::runtime_error("other")), errc::internal);
}

template <class T>
T round_trip(caf::actor_system& sys, const T& value) {
  // Through a type-erased message, as a remote actor would receive it.
  caf::message msg = caf::make_message(value);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  EXPECT_FALSE(sink(msg));
  caf::message out;
  caf::binary_deserializer source{sys, buf};
  EXPECT_FALSE(source(out));
  EXPECT_TRUE(out.match_elements<T>());
  return out.get_as<T>(0);
}

TEST(actor_bootstrap, every_message_type_is_registered_and_round_trips) {
  system_fixture f;
  caf::actor_system sys{f.cfg};
  auto m = round_trip(sys, std::vector<metric_row>{{3, "train/loss", 0.25, 1.5}});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].name, "train/loss");
  EXPECT_DOUBLE_EQ(m[0].value, 0.25);
  auto r = round_trip(sys, std::vector<rollout_row>{{1, "p", "c", 0.5, "{}", "[]", 7}});
  EXPECT_EQ(r[0].weight_version, 7);
  EXPECT_EQ(r[0].completion, "c");
  EXPECT_EQ(round_trip(sys, checkpoint_row{4, "ckpt", 2.0}).path, "ckpt");
  EXPECT_EQ(round_trip(sys, event_row{1.0, "restart", "w", "m"}).kind, "restart");
  EXPECT_EQ(round_trip(sys, std::vector<std::int64_t>{1, -2, 3}), (std::vector<std::int64_t>{1, -2, 3}));
}

TEST(store_actor, commits_rows_before_answering) {
  testing::temp_dir dir;
  run_info info;
  info.name = info.experiment = "t";
  const auto path = dir / "s.sqlite";
  {
    system_fixture f;
    caf::actor_system sys{f.cfg};
    auto store = spawn_store_actor(sys, run_store::create(path, info, ""));
    caf::scoped_actor self{sys};
    bool ok = false;
    self->request(store, caf::infinite, metrics_atom::value, std::vector<metric_row>{{0, "a", 1.0, 0.0}, {1, "a", 2.0, 0.0}})
      .receive([&](bool b) { ok = b; }, [&](caf::error& e) { FAIL() << render(e); });
    ASSERT_TRUE(ok);
    // Read while the actor still holds the writer: the rows are committed already.
    EXPECT_EQ(run_store::open(path, store_mode::read_only).metrics("a").size(), 2u);
    self->request(store, caf::infinite, status_atom::value, std::string("finished"))
      .receive([](bool) {}, [&](caf::error& e) { FAIL() << render(e); });
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }
  EXPECT_EQ(run_store::open(path, store_mode::read_only).info().status, "finished");
}

TEST(store_actor, a_failed_write_answers_system_failure_naming_the_store) {
  testing::temp_dir dir;
  run_info info;
  info.name = info.experiment = "t";
  { run_store::create(dir / "s.sqlite", info, ""); }
  system_fixture f;
  caf::actor_system sys{f.cfg};
  // A read-only handle: every write fails inside SQLite.
  auto store = spawn_store_actor(sys, run_store::open(dir / "s.sqlite", store_mode::read_only));
  caf::scoped_actor self{sys};
  self->request(store, caf::infinite, event_atom::value, event_row{1.0, "k", "s", "m"})
    .receive([](bool) { FAIL() << "write to a read-only store succeeded"; },
             [&](caf::error& e) {
               EXPECT_EQ(e.category(), errc_category);
               EXPECT_EQ(static_cast<errc>(e.code()), errc::system_failure);
             });
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace troupe
