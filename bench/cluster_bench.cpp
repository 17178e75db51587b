// Request/response round trips per second to an actor: in the same actor system (the
// baseline), and on a cluster worker over the middleman on loopback, plain and TLS,
// with 1 and 16 requests in flight. The remote actor is spawned the way the head
// spawns any actor (cluster_head::spawn on an in-process worker), so the figure is the
// cluster's real path: BASP framing, serialization, the middleman's threads, TCP.
//   build/bench/cluster_bench [--seconds S]
// Compare with Ray's published 1:1 actor-call rates (about 2,000 sync and 8,700 async
// calls/s).
#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <unistd.h>

#include "distributed/cluster.hpp"
#include "distributed/cluster_tls.hpp"
#include "actors/system.hpp"

namespace {

using namespace troupe;
using clock_type = std::chrono::steady_clock;

caf::behavior echo(caf::event_based_actor*) {
  return {[](caf::ping_atom, std::int64_t x) { return x; }};
}

struct counter {
  std::atomic<std::int64_t> done{0};
  std::atomic<bool> stop{false};
};

// Keeps `inflight` requests to `target` outstanding until told to stop.
caf::behavior driver(caf::event_based_actor* self, caf::actor target, int inflight, std::shared_ptr<counter> c) {
  auto issue = std::make_shared<std::function<void(std::int64_t)>>();
  *issue = [self, target, c, issue](std::int64_t i) {
    if (c->stop) {
      self->quit();
      return;
    }
    self->request(target, std::chrono::seconds(30), caf::ping_atom::value, i)
      .then(
        [c, issue](std::int64_t x) {
          c->done.fetch_add(1, std::memory_order_relaxed);
          (*issue)(x + 1);
        },
        [self](caf::error& e) {
          std::cerr << "request failed: " << to_string(e) << '\n';
          self->quit();
        });
  };
  for (int k = 0; k < inflight; ++k) (*issue)(k);
  return {[](caf::ping_atom) {}};
}

double measure(caf::actor_system& sys, const caf::actor& target, int inflight, double seconds) {
  auto c = std::make_shared<counter>();
  auto d = sys.spawn(driver, target, inflight, c);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // warm up
  const auto n0 = c->done.load();
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto n1 = c->done.load();
  const double dt = std::chrono::duration<double>(clock_type::now() - t0).count();
  c->stop = true;
  caf::scoped_actor self{sys};
  self->wait_for(d);
  return static_cast<double>(n1 - n0) / dt;
}

struct node {
  node() {
    system_section s;
    s.threads = 2;
    configure_actor_system(cfg, s);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

void report(const char* path, int inflight, double rate) {
  std::printf("%-22s %3d in flight  %10.0f round trips/s  %8.1f us each\n", path, inflight, rate,
              1e6 * inflight / rate);
}

void remote(const char* label, bool tls, const std::string& certs, double seconds) {
  node head_node, worker_node;
  cluster_config c;
  c.listen = "127.0.0.1:0";
  if (tls) c.tls = {certs + "/head.crt", certs + "/head.key", certs + "/ca.crt", ""};
  auto head = std::make_unique<cluster_head>(*head_node.sys, c);
  worker_options o;
  o.head_host = "127.0.0.1";
  o.head_port = head->port();
  o.name = "bench";
  if (tls) o.tls = {certs + "/bench.crt", certs + "/bench.key", certs + "/ca.crt", ""};
  std::thread worker([&] { run_worker(*worker_node.sys, o); });
  head->wait_for({"bench"});
  auto target = head->spawn("bench", "bench_echo", "");
  for (int inflight : {1, 16}) report(label, inflight, measure(*head_node.sys, target, inflight, seconds));
  head.reset();
  worker.join();
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2.0;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--seconds") seconds = std::stod(argv[i + 1]);
  register_remote_kind("bench_echo", [](caf::actor_system& sys, const std::string&) { return sys.spawn(echo); });

  const auto certs = std::filesystem::temp_directory_path() / ("troupe-cluster-bench-" + std::to_string(::getpid()));
  write_cluster_certs(certs.string(), {"head", "bench"});

  {
    node local;
    auto target = local.sys->spawn(echo);
    for (int inflight : {1, 16}) report("local (same system)", inflight, measure(*local.sys, target, inflight, seconds));
    caf::anon_send_exit(target, caf::exit_reason::user_shutdown);
  }
  remote("remote, loopback", false, certs.string(), seconds);
  remote("remote, loopback, TLS", true, certs.string(), seconds);
  std::filesystem::remove_all(certs);
  return 0;
}
