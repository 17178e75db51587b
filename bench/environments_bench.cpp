// Environment throughput on the CPU, one thread: how many policy actions per second
// the built-ins judge, and how fast tasks are generated and read from JSONL. The JSONL
// reader is measured against its baseline in the same run: nlohmann::json::parse of the
// same lines alone (the ceiling for any validating reader on that library).
// bench/countdown_reward_python.py times TinyZero's countdown reward on the same action.
//   build/bench/environments_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "environments/calculator.hpp"
#include "environments/countdown.hpp"
#include "environments/expression.hpp"
#include "environments/jsonl_tasks.hpp"

namespace {

using namespace troupe;

const std::string countdown_action =
    "Let me think: 25-5 is 20, and 20*4 is 80, so that works. <answer>(25 - 5) * 4</answer>";

void rate(benchmark::State& state, const char* name, double per_iteration = 1) {
  state.counters[name] = benchmark::Counter(static_cast<double>(state.iterations()) * per_iteration,
                                            benchmark::Counter::kIsRate);
}

void expression_evaluate(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(evaluate_expression("(25 - 5) * 4 + 7/2 - (3*(2+1))"));
  rate(state, "exprs_per_s");
}

void countdown_judge(benchmark::State& state) {
  countdown_env env({});
  const task t{"c", "p", {{"numbers", "25 5 4"}, {"target", "80"}}};
  for (auto _ : state) {
    env.reset(t);
    benchmark::DoNotOptimize(env.step(countdown_action));
  }
  rate(state, "actions_per_s");
}

void countdown_generate(benchmark::State& state) {
  countdown_tasks gen(countdown_options{}, 1);
  std::int64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(gen.at(split::train, i++));
  rate(state, "tasks_per_s");
}

// One two-turn tool episode, as the env host plays it: reset, a tool call, the answer.
void calculator_episode(benchmark::State& state) {
  calculator_env env({});
  const task t{"q", "A shop has 12 boxes of 7 pencils. How many pencils?", {{"answer", "84"}}};
  for (auto _ : state) {
    env.reset(t);
    benchmark::DoNotOptimize(env.step("<tool>calc: 12*7</tool>"));
    benchmark::DoNotOptimize(env.step("<answer>84</answer>"));
  }
  rate(state, "episodes_per_s");
}

std::string jsonl_lines(int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += "{\"id\": \"t" + std::to_string(i) + "\", \"prompt\": \"Using the numbers [25, 5, 4], create an equation that "
         "equals 80.\", \"metadata\": {\"numbers\": \"25 5 4\", \"target\": \"80\"}}\n";
  return s;
}

void jsonl_read_tasks(benchmark::State& state) {
  const std::string text = jsonl_lines(10000);
  for (auto _ : state) {
    std::istringstream in(text);
    benchmark::DoNotOptimize(read_jsonl_tasks(in, "bench.jsonl"));
  }
  rate(state, "lines_per_s", 10000);
}

void jsonl_baseline_parse_only(benchmark::State& state) {
  const std::string text = jsonl_lines(10000);
  for (auto _ : state) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) benchmark::DoNotOptimize(nlohmann::json::parse(line));
  }
  rate(state, "lines_per_s", 10000);
}

}  // namespace

BENCHMARK(expression_evaluate);
BENCHMARK(countdown_judge);
BENCHMARK(countdown_generate);
BENCHMARK(calculator_episode);
BENCHMARK(jsonl_read_tasks)->Unit(benchmark::kMillisecond);
BENCHMARK(jsonl_baseline_parse_only)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
