// The guardrail actor (each rail an actor) against the rails engine's synchronous check
// (the baseline, the same rails one after another on the caller's thread), on
// examples/rails/default.yaml's output rails and a chat-sized completion: one check at
// a time (a round trip through the rail actors), and 32 in flight, as a GRPO step sends
// them.
//   build/bench/guardrail_actor_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <caf/all.hpp>

#include <memory>
#include <string>
#include <vector>

#include "actors/protocol/atoms.hpp"
#include "actors/guardrail_actor.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/system.hpp"

namespace {

const std::string rails_path = std::string(TROUPE_SOURCE_DIR) + "/examples/rails/default.yaml";
const std::string text = "Sure: mail the invoice to ann@example.com, or call (415) 555-0132 after 5 pm.";

void actor_checks(benchmark::State& state) {
  caf::actor_system_config cfg;
  troupe::system_section s;
  s.threads = 2;
  troupe::configure_actor_system(cfg, s);
  caf::actor_system sys{cfg};
  auto rails = troupe::spawn_guardrail_actor(
    sys, std::make_shared<const troupe::rails_engine>(troupe::load_rails_file(rails_path)));
  caf::scoped_actor self{sys};
  const auto in_flight = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    std::vector<caf::response_handle<caf::blocking_actor, caf::detail::type_list<std::vector<troupe::rail_verdict>>, true>> pending;
    for (std::size_t i = 0; i < in_flight; ++i)
      pending.push_back(self->request(rails, std::chrono::seconds(30), troupe::check_atom::value,
                                      troupe::rail_stage::output, text));
    for (auto& p : pending) p.receive([](std::vector<troupe::rail_verdict>&) {}, [](caf::error&) {});
  }
  state.counters["checks_per_s"] =
    benchmark::Counter(static_cast<double>(state.iterations() * in_flight), benchmark::Counter::kIsRate);
  self->send_exit(rails, caf::exit_reason::user_shutdown);
}

void engine_baseline(benchmark::State& state) {
  troupe::rails_engine_options o;
  o.mode = troupe::rails_engine_options::concurrency::never;
  troupe::rails_engine engine(troupe::load_rails_file(rails_path), o);
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state)
    for (std::size_t i = 0; i < n; ++i) benchmark::DoNotOptimize(engine.check(troupe::rail_stage::output, text));
  state.counters["checks_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(actor_checks)->Arg(1)->Arg(32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(engine_baseline)->Arg(1)->Arg(32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_MAIN();
