// The rails engine on examples/rails/default.yaml: one check of a chat-sized input
// (about 100 bytes) and of 1 MiB, with the stage's rails run concurrently (the engine's
// default) against the baseline of the same rails one after another on one thread.
//   build/bench/rails_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <string>

#include "guardrails/rails_engine.hpp"

namespace {

const std::string rails_path = std::string(TROUPE_SOURCE_DIR) + "/examples/rails/default.yaml";

std::string text_of(std::size_t bytes) {
  const std::string filler = "The quick brown fox jumps over the lazy dog, version 1.2.3.4.5, order 1234567890123456. ";
  std::string t;
  while (t.size() < bytes) {
    t += filler;
    if (t.size() % 97 < 3) t += "write to ann@example.com or 4111 1111 1111 1111. ";
  }
  return t.substr(0, bytes);
}

void check(benchmark::State& state, bool concurrent) {
  troupe::rails_engine_options o;
  o.mode = concurrent ? troupe::rails_engine_options::concurrency::always : troupe::rails_engine_options::concurrency::never;
  troupe::rails_engine engine(troupe::load_rails_file(rails_path), o);
  const auto text = state.range(0) == 0 ? std::string("Hi, please mail the invoice to ann@example.com and call me on (415) 555-0132.")
                                        : text_of(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(engine.check(troupe::rail_stage::input, text));
  state.counters["MB_per_s"] = benchmark::Counter(static_cast<double>(state.iterations() * text.size()) / 1e6,
                                                  benchmark::Counter::kIsRate);
}

void rails_concurrent(benchmark::State& state) { check(state, true); }
void rails_sequential_baseline(benchmark::State& state) { check(state, false); }

}  // namespace

BENCHMARK(rails_concurrent)->Arg(0)->Arg(1 << 20)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(rails_sequential_baseline)->Arg(0)->Arg(1 << 20)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_MAIN();
