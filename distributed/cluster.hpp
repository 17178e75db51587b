// Scale-out over CAF's middleman: one head process (`troupe run`) and worker processes
// (`troupe worker --join HOST:PORT --name N`) that run actors the head asks for.
//
// How it works:
//   - The head publishes a registry actor on cluster.listen (caf::io::publish, or
//     caf::openssl::publish when cluster.tls is set).
//   - A worker connects to it (retrying until its join timeout, so it may start before
//     the head), spawns its local spawner actor and joins: (join, worker_facts,
//     spawner). The registry monitors the spawner; a worker whose connection drops or
//     whose process dies is reported through on_worker_lost().
//   - cluster_head::spawn(worker, kind, payload) asks that worker's spawner to build an
//     actor of a registered kind from a text payload; the answer is a handle to the
//     remote actor, used like a local one (every message type is serializable,
//     actors/protocol/message_types.hpp).
//   - The head's destructor tells every worker the run is over; a worker then stops
//     its actors and `troupe worker` exits 0. A worker that loses the head stops its
//     actors and exits 1.
//
// The run store lives in the head. A remote actor gets no store: events it would write
// (an env worker's restart, a supervisor giving up) travel as messages to the head's
// registry, which forwards them, with "WORKER/" before their source, to the store
// actor given to forward_events_to(), or drops them when there is none.
//
// Security: see distributed/cluster_tls.hpp. The default listen address is loopback; a
// non-loopback one needs TLS (validate(cluster_section)); with TLS a peer must present
// a certificate signed by cluster.tls.cafile, and each refusal is logged.
#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/protocol/cluster.hpp"
#include "actors/cluster_config.hpp"

namespace troupe {

// --- worker side: what a worker can spawn --------------------------------------------

// Builds an actor of one kind from its payload: kind-specific text (YAML, of which JSON
// is a subset) that the factory parses; throws input_error on a bad payload. The actor
// must not need the run store (see above); the `events` actor handed to the factory
// accepts (event_atom, event_row) -> bool and may be used as a store for events.
struct remote_spawn_context {
  caf::actor_system& sys;
  std::string worker;  // this worker's name
  caf::actor events;   // forwards events to the head (see above)
};
using remote_factory = std::function<caf::actor(caf::actor_system&, const std::string& payload)>;
using remote_factory_ex = std::function<caf::actor(const remote_spawn_context&, const std::string& payload)>;

// Thread-safe; a second registration of a kind replaces the first.
void register_remote_kind(const std::string& kind, remote_factory f);
void register_remote_kind(const std::string& kind, remote_factory_ex f);
std::vector<std::string> remote_kinds();  // sorted

// The built-in kinds, registered by run_worker (and by anyone calling this; idempotent):
//   "env_host"   payload: an `env:` section (experiments/grpo_config.hpp env_section), e.g.
//                env_host_payload(cfg.env); episodes are judged on the worker
//   "reward"     payload: {reward: <reward section>, failure_reward: X}
//   "guardrails" payload: a `guardrails:` section; a rails_file path is read on the
//                worker's file system
// The reward and guardrail actors run under a supervisor on the worker, like in the head.
void register_builtin_remote_kinds();
// Kinds the torch plugin registers (its register_remote_kinds entry point): the worker
// loads LibTorch only when the head asks for one of these.
const std::vector<std::string>& torch_remote_kinds();  // {"generator", "trainer_rank"}

// --- head side ---------------------------------------------------------------------


struct worker_info {
  std::string name;
  std::string host;
  caf::actor spawner;  // the worker's spawner (remote); spawn() talks to it
  std::int64_t pid = 0;
  int cores = 0;
  int cuda_devices = 0;
};

class cluster_head {
 public:
  // Validates `cfg` (validate(cluster_section)), installs its TLS files in `sys`
  // (distributed/cluster_tls.hpp) and publishes the registry on cfg.listen. Throws
  // input_error naming cluster.listen / cluster.tls.* for bad settings (a non-loopback
  // address without TLS) and system_error when the address cannot be bound.
  // `sys` must have been configured by configure_actor_system() (middleman loaded).
  cluster_head(caf::actor_system& sys, const cluster_config& cfg);
  // Tells each joined worker the run is over (waiting up to 2 s for their answers),
  // unpublishes and stops the registry. on_worker_lost is not called for these.
  ~cluster_head();
  cluster_head(const cluster_head&) = delete;
  cluster_head& operator=(const cluster_head&) = delete;

  std::uint16_t port() const;    // the bound port (cfg.listen may say 0)
  // Without TLS: the file holding the join secret workers must show
  // (distributed/cluster_secret.hpp), removed when the head ends; empty with TLS.
  std::string secret_file() const;
  std::string endpoint() const;  // HOST:PORT, what `troupe worker --join` takes

  // Blocks until every named worker has joined and returns them in `names` order.
  // Throws input_error naming the missing workers (and the joined ones) after
  // cfg.join_timeout_s, and system_error when a stop is requested (core/stop.hpp)
  // while it waits.
  std::vector<worker_info> wait_for(const std::vector<std::string>& names);
  std::vector<worker_info> workers() const;  // joined and not lost, by name

  // Asks `worker` to spawn `kind` from `payload` and returns the remote actor. Throws
  // system_error with the worker's text (unknown kind, bad payload, a factory that
  // threw), or naming the worker when it has not joined, was lost, or did not answer
  // within cfg.spawn_timeout_s.
  caf::actor spawn(const std::string& worker, const std::string& kind, const std::string& payload);

  // Called on a CAF thread when a joined worker is lost (its process died, its
  // connection dropped). Keep it short; do not call back into this object from it.
  void on_worker_lost(std::function<void(const std::string& name)> f);
  // Called (on the middleman's thread) for each refused TLS peer, with the same line
  // that went to stderr; forward_events_to() also records it as a `tls_refused` event.
  void on_peer_refused(std::function<void(const std::string& line)> f);
  // The store actor (actors/store_actor.hpp) that receives remote actors' events and
  // refusals; invalid (the default) drops them.
  void forward_events_to(caf::actor store);

  struct state;  // shared with the registry actor

 private:
  caf::actor_system& sys_;
  cluster_config cfg_;
  std::shared_ptr<state> st_;
  caf::actor registry_;
  std::uint16_t port_ = 0;
  int refusal_sink_ = 0;
};

// --- worker side: `troupe worker` ----------------------------------------------------

struct worker_options {
  std::string head_host = "127.0.0.1";
  std::uint16_t head_port = 0;
  std::string name;
  tls_options tls;
  // With TLS: the common name the head's certificate must carry (`troupe cluster certs
  // --head NAME` issues it).
  std::string head_name = "head";
  double join_timeout_s = 60;  // keep retrying the head this long
  // Without TLS: where the head's join secret is; empty: cluster_secret_path(head_port),
  // where a head of the same user on this machine writes it.
  std::string secret_file;
};

// Connects to the head (retrying until opts.join_timeout_s; TLS when configured),
// joins with this process's facts and serves spawn requests until the head ends the
// run (returns 0), the head goes away (1) or a stop is requested (130). Throws
// input_error for bad options, a refused join (a name already taken, another protocol)
// and system_error when the head cannot be reached in time.
int run_worker(caf::actor_system& sys, const worker_options& opts);

// This process's facts (name set by the caller).
worker_facts local_worker_facts(const std::string& name);

// Payloads of the built-in kinds, from the head's config sections.
struct env_section;
struct reward_section;
struct guardrails_section;
std::string env_host_payload(const env_section& env);
std::string reward_payload(const reward_section& reward, double failure_reward);
std::string guardrails_payload(const guardrails_section& g);

}  // namespace troupe
