// Environment steps per second and latency per step, in process and through the
// external bridge (environments/external/external_env.hpp), against the floor of a raw ZeroMQ
// DEALER/ROUTER round trip carrying frames of the same sizes.
//   build/bench/env_bench --benchmark_counters_tabular=true
//
// The bridge's server is a C++ ROUTER thread in this process serving troupe's own
// environments over the protocol (env_protocol.hpp), so the figures are the cost of
// the bridge, not of an interpreter; with /usr/bin/python3 and pyzmq the reference
// Python server is measured too. Goal: a bridge step costs at most 2x the raw round trip.
// The step benchmarks report the CPU time of the whole process (client, server thread
// and ZeroMQ's I/O threads), which a loaded machine disturbs less than the wall time.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>
#include <zmq.hpp>

#include "environments/external/env_protocol.hpp"
#include "environments/external/external_env.hpp"

extern char** environ;

namespace {

using namespace troupe;

// A multi-turn environment that never ends: each step is one round trip.
class echo_env : public environment {
 public:
  explicit echo_env(const environment_options&) {}
  observation reset(const task& t) override { return {t.prompt, {"\n"}}; }
  step_result step(const std::string& action) override {
    step_result r;
    r.next = {action, {"\n"}};
    r.rewards["len"] = static_cast<double>(action.size());
    r.done = false;
    r.info["turn"] = std::to_string(++turn_);
    return r;
  }

 private:
  int turn_ = 0;
};
TROUPE_REGISTER_ENVIRONMENT("bench_echo", echo_env, "echoes the action, never done (benchmark)");

// Serves troupe's registered environments over the protocol on a loopback port, in a
// thread. `raw` replies with a canned frame instead, decoding nothing: the floor.
class router_server {
 public:
  explicit router_server(std::string canned = "") : canned_(std::move(canned)) {
    sock_.bind("tcp://127.0.0.1:*");
    endpoint = sock_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { run(); });
  }
  ~router_server() {
    stop_ = true;
    thread_.join();
  }
  std::string endpoint;

 private:
  void run() {
    std::string out;
    std::map<std::string, std::unique_ptr<environment>> episodes;
    int counter = 0;
    zmq::message_t peer, body;
    while (!stop_) {
      zmq_pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 50) <= 0) continue;
      (void)sock_.recv(peer);
      (void)sock_.recv(body);
      if (!canned_.empty()) {
        sock_.send(peer, zmq::send_flags::sndmore);
        sock_.send(zmq::const_buffer(canned_.data(), canned_.size()));
        continue;
      }
      auto req = env_protocol::decode_request(std::string_view(static_cast<const char*>(body.data()), body.size()));
      env_protocol::reply rep;
      rep.id = req.id;
      if (req.type == "hello") {
        rep.type = "welcome";
        rep.protocol = env_protocol::version;
        rep.environments = registered_environments();
      } else if (req.type == "reset") {
        rep.type = "observation";
        rep.episode = "e" + std::to_string(++counter);
        auto env = make_environment(req.env);
        rep.obs = env->reset(req.t);
        episodes[rep.episode] = std::move(env);
      } else if (req.type == "step") {
        rep.type = "step_result";
        auto it = episodes.find(req.episode);
        rep.result = it->second->step(req.action);
        if (rep.result.done) episodes.erase(it);
      } else if (req.type == "close") {
        episodes.erase(req.episode);
        continue;
      } else {
        rep.type = "pong";
      }
      env_protocol::encode(rep, out);
      sock_.send(peer, zmq::send_flags::sndmore);
      sock_.send(zmq::const_buffer(out.data(), out.size()));
    }
  }

  zmq::context_t ctx_{1};
  zmq::socket_t sock_{ctx_, zmq::socket_type::router};
  std::string canned_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

const task arith_task{"arithmetic/train/1", "12+34=", {{"answer", "46"}}};

void count(benchmark::State& state, const char* name, double per_iteration) {
  state.counters[name] = benchmark::Counter(static_cast<double>(state.iterations()) * per_iteration,
                                            benchmark::Counter::kIsRate);
}

// (a) In process: one single-turn arithmetic episode (reset + step) per iteration.
void in_process_arithmetic_episode(benchmark::State& state) {
  auto env = make_environment("arithmetic");
  for (auto _ : state) {
    env->reset(arith_task);
    benchmark::DoNotOptimize(env->step("46\n"));
  }
  count(state, "episodes_per_s", 1);
}
BENCHMARK(in_process_arithmetic_episode);

// (b) The bridge: the same episode, two round trips (reset, step).
void external_arithmetic_episode(benchmark::State& state) {
  router_server server;
  auto env = make_environment("external", {{"endpoint", server.endpoint}, {"env", "arithmetic"}});
  for (auto _ : state) {
    env->reset(arith_task);
    benchmark::DoNotOptimize(env->step("46\n"));
  }
  count(state, "episodes_per_s", 1);
}
BENCHMARK(external_arithmetic_episode)->UseRealTime();

std::string action_of(std::int64_t bytes) { return std::string(static_cast<std::size_t>(bytes), '7'); }

// (b) The bridge: one step of a never-ending episode per iteration (one round trip),
// with an action of range(0) bytes.
void external_step(benchmark::State& state) {
  router_server server;
  auto env = make_environment("external", {{"endpoint", server.endpoint}, {"env", "bench_echo"}});
  env->reset({"bench/1", "go", {}});
  const auto action = action_of(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(env->step(action));
  count(state, "steps_per_s", 1);
}
BENCHMARK(external_step)->Arg(16)->Arg(4096)->MeasureProcessCPUTime()->UseRealTime();

// (c) The floor: a DEALER sends the bytes of that step request and a ROUTER answers
// with the bytes of its step_result, neither decoding anything.
void raw_zmq_round_trip(benchmark::State& state) {
  const auto action = action_of(state.range(0));
  env_protocol::request req;
  req.type = "step";
  req.id = 12345;
  req.episode = "e1";
  req.action = action;
  std::string request_frame, reply_frame;
  env_protocol::encode(req, request_frame);
  env_protocol::reply rep;
  rep.type = "step_result";
  rep.id = req.id;
  rep.result = echo_env({}).step(action);
  env_protocol::encode(rep, reply_frame);
  router_server server(reply_frame);
  zmq::context_t ctx(1);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.connect(server.endpoint);
  zmq::message_t in;
  for (auto _ : state) {
    dealer.send(zmq::const_buffer(request_frame.data(), request_frame.size()));
    (void)dealer.recv(in);
  }
  state.counters["request_bytes"] = static_cast<double>(request_frame.size());
  state.counters["reply_bytes"] = static_cast<double>(reply_frame.size());
  count(state, "steps_per_s", 1);
}
BENCHMARK(raw_zmq_round_trip)->Arg(16)->Arg(4096)->MeasureProcessCPUTime()->UseRealTime();

// (b') The bridge to the reference Python server (examples/python_env/server.py): one
// step of a `guess` episode long enough never to end here.
void external_step_python(benchmark::State& state) {
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' >/dev/null 2>&1") != 0) {
    state.SkipWithError("/usr/bin/python3 lacks zmq or msgpack");
    return;
  }
  const std::string port = "47655";
  std::string script = std::string(TROUPE_SOURCE_DIR) + "/examples/python_env/server.py", py = "/usr/bin/python3",
              flag = "--port", p = port;
  char* argv[] = {py.data(), script.data(), flag.data(), p.data(), nullptr};
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;  // its "listening on" line would land in the table
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn(&pid, py.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  auto env = make_environment("external", {{"endpoint", "tcp://127.0.0.1:" + port}, {"env", "guess"}});
  env->reset({"bench/1", "go", {{"secret", "100"}, {"max_turns", "1000000000"}}});
  for (auto _ : state) benchmark::DoNotOptimize(env->step("1\n"));
  count(state, "steps_per_s", 1);
  env.reset();
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}
BENCHMARK(external_step_python)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
