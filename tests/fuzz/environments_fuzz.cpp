// libFuzzer target: bytes as what a policy writes to the built-in environments, and as
// a JSONL tasks file. The first byte picks the target; the rest, split at NUL bytes,
// are the actions of one episode. Environments must answer every action without
// throwing (a malformed action is a zero reward with a reason); the tasks reader may
// only throw input_error. Built and run by scripts/fuzz.sh environments.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "environments/calculator.hpp"
#include "environments/countdown.hpp"
#include "environments/expression.hpp"
#include "environments/guess_number.hpp"
#include "environments/jsonl_tasks.hpp"

namespace {

std::vector<std::string> split_actions(const std::string& s) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == '\0') out.emplace_back();
    else out.back() += c;
  }
  return out;
}

void play(troupe::environment& env, const troupe::task& t, const std::vector<std::string>& actions) {
  env.reset(t);
  for (const auto& a : actions)
    if (env.step(a).done) env.reset(t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto r = troupe::evaluate_expression(text);
      if (r.ok) (void)r.value.to_string();
      (void)troupe::parse_rational(text);
      break;
    }
    case 1: {
      troupe::countdown_env env({});
      play(env, {"f", "p", {{"numbers", "25 5 4 3"}, {"target", "80"}}}, split_actions(text));
      break;
    }
    case 2: {
      troupe::calculator_env env({{"max_tool_calls", "3"}});
      play(env, {"f", "p", {{"answer", "84"}}}, split_actions(text));
      break;
    }
    case 3: {
      troupe::guess_number_env env({{"max_turns", "3"}});
      play(env, {"f", "p", {{"secret", "37"}, {"low", "1"}, {"high", "100"}}}, split_actions(text));
      break;
    }
    default: {
      std::istringstream in(text);
      try {
        (void)troupe::read_jsonl_tasks(in, "fuzz.jsonl");
      } catch (const troupe::input_error&) {
      }
    }
  }
  return 0;
}
