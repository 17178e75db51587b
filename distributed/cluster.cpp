#include "distributed/cluster.hpp"

#include <unistd.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "actors/protocol/atoms.hpp"
#include "distributed/cluster_secret.hpp"
#include "distributed/cluster_tls.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/store_actor.hpp"
#include "actors/torch_plugin.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "core/stop.hpp"
#include "core/store.hpp"

namespace troupe {

namespace {

// Bump when the join/spawn/end messages or worker_facts change: a head refuses workers
// of another protocol instead of failing later on a message it cannot read.
constexpr int cluster_protocol = 2;  // 2: worker_facts carries the join secret

using clock = std::chrono::steady_clock;

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
}

void log_line(const std::string& line) { std::cerr << "troupe cluster: " << line << std::endl; }

// --- the kinds a worker can spawn ----------------------------------------------------

std::mutex kinds_mutex;
std::map<std::string, remote_factory_ex>& kinds() {
  static std::map<std::string, remote_factory_ex> k;
  return k;
}

remote_factory_ex find_kind(const std::string& kind) {
  std::lock_guard<std::mutex> lock(kinds_mutex);
  auto it = kinds().find(kind);
  return it == kinds().end() ? remote_factory_ex{} : it->second;
}

// Loads the torch plugin once and lets it register its kinds; returns why that gave
// nothing ("" when it registered).
std::string load_torch_kinds() {
  static std::once_flag once;
  static std::string why;
  std::call_once(once, [] {
    try {
      const auto& api = torch_plugin();
      if (api.register_remote_kinds == nullptr) why = "the torch plugin registers no remote kinds";
      else api.register_remote_kinds();
    } catch (const std::exception& e) {
      why = e.what();
    }
  });
  return why;
}

std::string joined_names(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

// --- the worker's spawner ------------------------------------------------------------

struct spawner_state {
  std::string worker;
  bool ended = false;               // the head ended the run: its going away is expected
  caf::actor head;                  // the head's registry (a proxy); also the events sink
  std::vector<caf::actor> children; // what it spawned, stopped when the run ends
  static inline const char* name = "troupe.cluster_spawner";
};
using spawner_actor = caf::stateful_actor<spawner_state>;

void stop_children(spawner_actor* self) {
  for (auto& c : self->state.children) self->send_exit(c, caf::exit_reason::user_shutdown);
  self->state.children.clear();
}

caf::result<caf::actor> spawn_kind(spawner_actor* self, const std::string& kind, const std::string& payload) {
  const std::string who = "worker " + self->state.worker + ": ";
  auto f = find_kind(kind);
  std::string torch_note;
  const auto& torch = torch_remote_kinds();
  if (!f && std::find(torch.begin(), torch.end(), kind) != torch.end()) {
    torch_note = load_torch_kinds();
    f = find_kind(kind);
  }
  if (!f)
    return make_error(errc::bad_input, who + "unknown kind '" + kind + "' (it offers: " + joined_names(remote_kinds()) +
                                           ")" + (torch_note.empty() ? "" : "; torch kinds: " + torch_note));
  try {
    remote_spawn_context ctx{self->system(), self->state.worker, self->state.head};
    caf::actor a = f(ctx, payload);
    if (!a) return make_error(errc::internal, who + "kind '" + kind + "' spawned no actor");
    self->state.children.push_back(a);
    self->monitor(a);
    return a;
  } catch (const input_error& e) {
    return make_error(errc::bad_input, who + "kind '" + kind + "': " + e.what());
  } catch (const std::exception& e) {
    return make_error(errc::system_failure, who + "kind '" + kind + "': " + e.what());
  }
}

caf::behavior spawner(spawner_actor* self, std::string worker, caf::actor head) {
  self->state.worker = std::move(worker);
  self->state.head = head;
  self->monitor(head);
  // Ctrl-C on the worker (run_worker sends an exit): stop what runs here, then go.
  self->set_exit_handler([self](caf::exit_msg& m) {
    stop_children(self);
    self->quit(m.reason);
  });
  self->set_down_handler([self](caf::down_msg& m) {
    if (m.source == self->state.head.address()) {
      stop_children(self);
      if (self->state.ended) self->quit();
      else self->quit(make_error(errc::system_failure, "lost the head (" + render(m.reason) + ")"));
      return;
    }
    auto& c = self->state.children;  // a child ended by itself: forget it
    c.erase(std::remove_if(c.begin(), c.end(), [&](const caf::actor& a) { return a.address() == m.source; }), c.end());
  });
  return {
    [self](spawn_atom, const std::string& kind, const std::string& payload) { return spawn_kind(self, kind, payload); },
    [self](end_atom) {
      self->state.ended = true;
      stop_children(self);
      // The answer still goes out: quit() ends the actor after this handler. (Not a
      // delayed_send to itself: a pending timeout holds a reference to the actor, and
      // an actor system shutting down meanwhile then waits for it forever.)
      self->quit();
      return true;
    },
  };
}

// --- the head's registry -------------------------------------------------------------

}  // namespace

struct cluster_head::state {
  mutable std::mutex m;
  std::condition_variable joined_cv;
  std::map<std::string, worker_info> joined;
  std::function<void(const std::string&)> on_lost;
  std::function<void(const std::string&)> on_refused;
  caf::actor store;
  bool ending = false;
  bool tls = false;  // joins are then held to the name on the worker's certificate
  std::string secret;       // without TLS: what a joining worker must show (set before the registry runs)
  std::string secret_file;  // where the head wrote it (removed when the head ends); under `m`
};

namespace {

// A refused peer (a failed TLS handshake, a name its certificate does not carry, a
// wrong join secret): an event of `kind` in the store and the on_peer_refused callback.
// The line itself is already on stderr.
void report_refusal(const std::shared_ptr<cluster_head::state>& st, const std::string& line,
                    const char* kind = "tls_refused") {
  std::function<void(const std::string&)> cb;
  caf::actor store;
  {
    std::lock_guard<std::mutex> lock(st->m);
    cb = st->on_refused;
    store = st->store;
  }
  if (store) caf::anon_send(store, event_atom::value, event_row{wall_clock_now(), kind, "cluster", line});
  if (cb) cb(line);
}

// Registers a worker whose join passed the checks; refused if its name is taken.
caf::expected<caf::actor> admit(caf::event_based_actor* self, const std::shared_ptr<cluster_head::state>& st,
                                const worker_facts& f, const caf::actor& spawner_handle) {
  caf::actor store;
  {
    std::lock_guard<std::mutex> lock(st->m);
    if (st->ending) return make_error(errc::stopped, "the run is ending");
    auto it = st->joined.find(f.name);
    if (it != st->joined.end())
      return make_error(errc::bad_input, "a worker named '" + f.name + "' has already joined (host " +
                                             it->second.host + ", pid " + std::to_string(it->second.pid) +
                                             "); give each worker its own --name");
    worker_info info;
    info.name = f.name;
    info.host = f.host;
    info.spawner = spawner_handle;
    info.pid = f.pid;
    info.cores = f.cores;
    info.cuda_devices = f.cuda_devices;
    st->joined[f.name] = info;
    store = st->store;
  }
  self->monitor(spawner_handle);
  st->joined_cv.notify_all();
  const std::string text = "worker '" + f.name + "' joined from " + f.host + " (pid " + std::to_string(f.pid) + ", " +
                           std::to_string(f.cores) + " cores, " + std::to_string(f.cuda_devices) + " CUDA devices)";
  log_line(text);
  record_event(self, store, event_row{wall_clock_now(), "worker_joined", "cluster", text});
  return caf::actor_cast<caf::actor>(self);
}

caf::behavior registry(caf::event_based_actor* self, std::shared_ptr<cluster_head::state> st) {
  self->set_down_handler([self, st](caf::down_msg& m) {
    std::string lost;
    std::function<void(const std::string&)> cb;
    caf::actor store;
    {
      std::lock_guard<std::mutex> lock(st->m);
      for (auto it = st->joined.begin(); it != st->joined.end(); ++it)
        if (it->second.spawner.address() == m.source) {
          lost = it->first;
          st->joined.erase(it);
          break;
        }
      if (st->ending) return;
      cb = st->on_lost;
      store = st->store;
    }
    if (lost.empty()) return;
    const std::string text = "lost worker '" + lost + "' (" + render(m.reason) + ")";
    log_line(text);
    record_event(self, store, event_row{wall_clock_now(), "worker_lost", "cluster", text});
    if (cb) cb(lost);
  });
  return {
    [self, st](join_atom, worker_facts& f, caf::actor& spawner_handle) -> caf::result<caf::actor> {
      if (f.protocol != cluster_protocol)
        return make_error(errc::bad_input, "the head speaks cluster protocol " + std::to_string(cluster_protocol) +
                                               ", this worker " + std::to_string(f.protocol) +
                                               ": run the same troupe build on every node");
      if (auto bad = check_worker_name(f.name)) return make_error(errc::bad_input, "worker name: " + *bad);
      if (!spawner_handle) return make_error(errc::bad_input, "a join without a spawner");
      if (!st->tls) {
        // Loopback only, but open to every user of the machine: the join secret, which
        // only the head's user can read, is the proof.
        if (same_secret(f.join_secret, st->secret)) return admit(self, st, f, spawner_handle);
        std::string file;
        {
          std::lock_guard<std::mutex> lock(st->m);  // written by the head after it listens
          file = st->secret_file;
        }
        const std::string text = "refused worker '" + f.name + "': " +
                                 (f.join_secret.empty() ? "it showed no join secret" : "wrong join secret") +
                                 " (a worker reads it from " + file +
                                 ", which only the head's user can read; or give it --secret-file)";
        log_line(text);
        report_refusal(st, text, "join_refused");
        return make_error(errc::bad_input, text);
      }
      // With TLS, the name must be the one the worker's certificate was issued for:
      // otherwise any node the CA signed could join as any worker and take its work.
      // The middleman says which connection the join came in on.
      const auto sender = self->current_sender();
      if (sender == nullptr) return make_error(errc::bad_input, "a join without a sender");
      const auto node = sender->node();
      auto rp = self->make_response_promise();
      self->request(self->system().middleman().actor_handle(), std::chrono::seconds(10), caf::get_atom::value, node)
        .then(
          [self, st, f, spawner_handle, rp](const caf::node_id&, const std::string& host, std::uint16_t port) mutable {
            const auto cn = tls_peer_name(host, port);
            if (!cn || *cn != f.name) {
              const std::string text = "refused worker '" + f.name + "' from " + host + ":" + std::to_string(port) + ": " +
                                       (cn ? "its certificate was issued for '" + *cn + "'"
                                           : std::string("no verified certificate is known for that connection")) +
                                       "; a worker joins under the name on its certificate (`troupe cluster certs DIR "
                                       "--nodes " + f.name + "` makes one)";
              log_line(text);
              report_refusal(st, text);
              rp.deliver(make_error(errc::bad_input, text));
              return;
            }
            rp.deliver(admit(self, st, f, spawner_handle));
          },
          [f, rp](caf::error& e) mutable {
            rp.deliver(make_error(errc::internal, "worker '" + f.name + "': cannot tell which connection its join came "
                                                  "in on: " + caf::to_string(e)));
          });
      return rp;
    },
    // Events of remote actors (their `store`): forwarded with the worker's name. Only a
    // joined worker's (or this process's) reach the store: the registry is published,
    // and any peer that connects could otherwise write into the run's history.
    [self, st](event_atom, event_row& row) -> caf::result<bool> {
      caf::actor store;
      std::string from;
      const auto sender = self->current_sender();
      {
        std::lock_guard<std::mutex> lock(st->m);
        store = st->store;
        if (sender != nullptr && sender->node() == self->node()) from = "head";
        for (const auto& [name, w] : st->joined)
          if (sender != nullptr && w.spawner.node() == sender->node()) from = name;
      }
      if (from.empty()) {
        const std::string text = "refused an event from a node that has not joined (" +
                                 (sender != nullptr ? caf::to_string(sender->node()) : std::string("no sender")) + ")";
        log_line(text);
        return make_error(errc::bad_input, text + ": only joined workers may record events");
      }
      row.source = from + "/" + row.source;
      record_event(self, store, std::move(row));
      return true;
    },
  };
}

int visible_cuda_devices() {
  std::error_code ec;
  int n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES"); v != nullptr) {
    const std::string s(v);
    const int listed = s.empty() ? 0 : static_cast<int>(std::count(s.begin(), s.end(), ',')) + 1;
    n = std::min(n, listed);
  }
  return n;
}

}  // namespace

// --- kinds ---------------------------------------------------------------------------

void register_remote_kind(const std::string& kind, remote_factory f) {
  register_remote_kind(kind, remote_factory_ex([f = std::move(f)](const remote_spawn_context& ctx, const std::string& p) {
                         return f(ctx.sys, p);
                       }));
}

void register_remote_kind(const std::string& kind, remote_factory_ex f) {
  std::lock_guard<std::mutex> lock(kinds_mutex);
  kinds()[kind] = std::move(f);
}

std::vector<std::string> remote_kinds() {
  std::lock_guard<std::mutex> lock(kinds_mutex);
  std::vector<std::string> out;
  for (const auto& [k, f] : kinds()) out.push_back(k);
  return out;
}

const std::vector<std::string>& torch_remote_kinds() {
  static const std::vector<std::string> k = {"generator", "trainer_rank"};
  return k;
}

worker_facts local_worker_facts(const std::string& name) {
  worker_facts f;
  f.name = name;
  char host[256] = {0};
  f.host = ::gethostname(host, sizeof(host) - 1) == 0 ? host : "unknown";
  f.pid = static_cast<std::int64_t>(::getpid());
  f.cores = static_cast<int>(std::thread::hardware_concurrency());
  f.cuda_devices = visible_cuda_devices();
  f.protocol = cluster_protocol;
  return f;
}

// --- head ----------------------------------------------------------------------------

cluster_head::cluster_head(caf::actor_system& sys, const cluster_config& cfg)
  : sys_(sys), cfg_(cfg), st_(std::make_shared<state>()) {
  validate(cfg_);
  const auto where = parse_host_port(cfg_.listen, "cluster.listen", true);
  if (!sys_.has_middleman())
    throw system_error("cluster: the actor system has no middleman (configure it with configure_actor_system)");
  if (cfg_.tls.enabled()) {
    // From the environment, so that the secret stays out of the run's config.yaml.
    if (const char* p = std::getenv("TROUPE_TLS_PASSPHRASE"); cfg_.tls.passphrase.empty() && p != nullptr)
      cfg_.tls.passphrase = p;
    check_tls_files(cfg_.tls, "cluster.tls");
    install_tls(sys_, cfg_.tls);
    st_->tls = true;
  }
  if (!st_->tls) st_->secret = make_cluster_secret();
  registry_ = sys_.spawn(registry, st_);
  // "0.0.0.0" and "::" bind every interface; CAF takes nullptr for that.
  const char* host = where.host == "0.0.0.0" || where.host == "::" ? nullptr : where.host.c_str();
  auto bound = cfg_.tls.enabled() ? caf::openssl::publish(registry_, where.port, host, true)
                                  : caf::io::publish(registry_, where.port, host, true);
  if (!bound) {
    caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
    throw system_error("cluster.listen: cannot listen on '" + cfg_.listen + "': " + sys_.render(bound.error()));
  }
  port_ = *bound;
  if (!st_->tls) {
    // Workers that connect before the file is there retry their join (run_worker).
    const auto file = cluster_secret_path(port_);
    {
      std::lock_guard<std::mutex> lock(st_->m);
      st_->secret_file = file;
    }
    try {
      write_cluster_secret(file, st_->secret);
    } catch (...) {
      caf::io::unpublish(registry_, port_);
      caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
      throw;
    }
  }
  refusal_sink_ = add_tls_refusal_sink([st = st_](const std::string& line) { report_refusal(st, line); });
}

cluster_head::~cluster_head() {
  remove_tls_refusal_sink(refusal_sink_);
  std::vector<worker_info> ws;
  {
    std::lock_guard<std::mutex> lock(st_->m);
    st_->ending = true;
    for (const auto& [n, w] : st_->joined) ws.push_back(w);
  }
  {
    caf::scoped_actor self{sys_};
    std::vector<caf::response_handle<caf::blocking_actor, caf::message, true>> pending;
    for (const auto& w : ws) pending.push_back(self->request(w.spawner, std::chrono::seconds(2), end_atom::value));
    for (auto& p : pending) p.receive([](bool) {}, [](caf::error&) {});
  }
  // Both publish paths share one BASP broker, whose doorman this closes (caf_openssl's
  // own unpublish does not compile in 0.17.6).
  caf::io::unpublish(registry_, port_);
  caf::anon_send_exit(registry_, caf::exit_reason::user_shutdown);
  if (const auto file = secret_file(); !file.empty()) ::unlink(file.c_str());
}

std::uint16_t cluster_head::port() const { return port_; }

std::string cluster_head::secret_file() const {
  std::lock_guard<std::mutex> lock(st_->m);
  return st_->secret_file;
}

std::string cluster_head::endpoint() const {
  auto host = parse_host_port(cfg_.listen, "cluster.listen", true).host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(port_);
}

std::vector<worker_info> cluster_head::wait_for(const std::vector<std::string>& names) {
  const auto deadline = clock::now() + millis(cfg_.join_timeout_s);
  std::unique_lock<std::mutex> lock(st_->m);
  auto missing = [&] {
    std::vector<std::string> out;
    for (const auto& n : names)
      if (st_->joined.count(n) == 0) out.push_back(n);
    return out;
  };
  while (!missing().empty()) {
    if (stop_requested()) throw system_error("stopped while waiting for workers " + joined_names(missing()));
    if (clock::now() >= deadline) {
      std::vector<std::string> present;
      for (const auto& [n, w] : st_->joined) present.push_back(n);
      throw input_error("cluster.workers: " + joined_names(missing()) + (missing().size() == 1 ? " has" : " have") +
                        " not joined within cluster.join_timeout_s = " + format_double(cfg_.join_timeout_s) +
                        " s (joined: " + joined_names(present) + "); start each with `troupe worker --join " +
                        endpoint() + " --name NAME`");
    }
    st_->joined_cv.wait_until(lock, std::min(deadline, clock::now() + std::chrono::milliseconds(200)));
  }
  std::vector<worker_info> out;
  for (const auto& n : names) out.push_back(st_->joined.at(n));
  return out;
}

std::vector<worker_info> cluster_head::workers() const {
  std::lock_guard<std::mutex> lock(st_->m);
  std::vector<worker_info> out;
  for (const auto& [n, w] : st_->joined) out.push_back(w);
  return out;
}

caf::actor cluster_head::spawn(const std::string& worker, const std::string& kind, const std::string& payload) {
  caf::actor target;
  {
    std::lock_guard<std::mutex> lock(st_->m);
    auto it = st_->joined.find(worker);
    if (it == st_->joined.end()) {
      std::vector<std::string> present;
      for (const auto& [n, w] : st_->joined) present.push_back(n);
      throw system_error("cluster: cannot spawn '" + kind + "' on worker '" + worker +
                         "': it has not joined or was lost (joined: " + joined_names(present) + ")");
    }
    target = it->second.spawner;
  }
  caf::scoped_actor self{sys_};
  caf::actor out;
  std::string err;
  self->request(target, millis(cfg_.spawn_timeout_s), spawn_atom::value, kind, payload)
    .receive([&](caf::actor& a) { out = std::move(a); }, [&](caf::error& e) { err = render(e); });
  if (!out) throw system_error("cluster: cannot spawn '" + kind + "' on worker '" + worker + "': " + err);
  return out;
}

void cluster_head::on_worker_lost(std::function<void(const std::string&)> f) {
  std::lock_guard<std::mutex> lock(st_->m);
  st_->on_lost = std::move(f);
}

void cluster_head::on_peer_refused(std::function<void(const std::string&)> f) {
  std::lock_guard<std::mutex> lock(st_->m);
  st_->on_refused = std::move(f);
}

void cluster_head::forward_events_to(caf::actor store) {
  std::lock_guard<std::mutex> lock(st_->m);
  st_->store = std::move(store);
}

// --- worker --------------------------------------------------------------------------

int run_worker(caf::actor_system& sys, const worker_options& opts) {
  if (auto bad = check_worker_name(opts.name)) throw input_error("worker --name: " + *bad);
  if (opts.head_host.empty() || opts.head_port == 0) throw input_error("worker --join: needs HOST:PORT of the head");
  const std::string head_at = opts.head_host + ":" + std::to_string(opts.head_port);
  if (opts.tls.enabled()) {
    check_tls_files(opts.tls, "--");
    install_tls(sys, opts.tls);
    if (opts.head_name.empty()) throw input_error("worker --head-name: must not be empty");
    expect_tls_server_name(opts.head_port, opts.head_name);
  } else if (!is_loopback_host(opts.head_host)) {
    throw input_error("worker --join: '" + head_at +
                      "' is not a loopback address; a head on another host is reached with TLS only: give --cert, "
                      "--key and --ca (`troupe cluster certs DIR` makes them)");
  }
  register_builtin_remote_kinds();

  // The head may start after its workers: retry until the join timeout.
  const auto deadline = clock::now() + millis(opts.join_timeout_s);
  caf::actor head;
  for (int attempt = 0;; ++attempt) {
    auto r = opts.tls.enabled() ? caf::openssl::remote_actor(sys, opts.head_host, opts.head_port)
                                : caf::io::remote_actor(sys, opts.head_host, opts.head_port);
    if (r) {
      head = std::move(*r);
      break;
    }
    // A head that is not the one named is not a head that is not up yet: no retries.
    if (auto wrong = opts.tls.enabled() ? tls_server_name_refusal(opts.head_port) : std::nullopt)
      throw input_error("worker '" + opts.name + "': refused the head at " + head_at + ": " + *wrong +
                        " (--head-name names the head's certificate)");
    std::string why = sys.render(r.error());
    // With TLS 1.3 a client learns that the head refused its certificate only as a
    // connection closed in CAF's handshake.
    if (opts.tls.enabled() && why.find("disconnect_during_handshake") != std::string::npos)
      why += "; did the head refuse this node's certificate? --cert must be signed by the head's CA";
    if (stop_requested()) return 130;
    if (clock::now() >= deadline)
      throw system_error("worker '" + opts.name + "': cannot reach the head at " + head_at + " within " +
                         format_double(opts.join_timeout_s) + " s (" + why + ")");
    if (attempt == 0) log_line("worker '" + opts.name + "': the head at " + head_at + " is not reachable yet (" + why +
                               "); retrying for " + format_double(opts.join_timeout_s) + " s");
    std::this_thread::sleep_for(std::min<clock::duration>(std::chrono::milliseconds(250), deadline - clock::now()));
  }

  auto sp = sys.spawn<caf::detached>(spawner, opts.name, head);
  caf::scoped_actor self{sys};
  std::string refusal;
  bool joined = false;
  // Without TLS the join shows the head's secret, from the file the head writes when it
  // starts: a worker that got there first (or read a file a killed head left) retries
  // until the join timeout.
  const std::string secret_file = opts.secret_file.empty() ? cluster_secret_path(opts.head_port) : opts.secret_file;
  for (;;) {
    auto facts = local_worker_facts(opts.name);
    if (!opts.tls.enabled()) facts.join_secret = read_cluster_secret(secret_file).value_or("");
    refusal.clear();
    self->request(head, std::chrono::seconds(30), join_atom::value, facts, sp)
      .receive([&](caf::actor&) { joined = true; }, [&](caf::error& e) { refusal = render(e); });
    const bool secret_refused = refusal.find("join secret") != std::string::npos;
    if (joined || !secret_refused || clock::now() >= deadline || stop_requested()) break;
    std::this_thread::sleep_for(std::min<clock::duration>(std::chrono::milliseconds(250), deadline - clock::now()));
  }
  if (!joined) {
    self->send_exit(sp, caf::exit_reason::user_shutdown);
    throw input_error("worker '" + opts.name + "': the head at " + head_at + " refused the join: " + refusal);
  }
  log_line("worker '" + opts.name + "' joined the head at " + head_at);
  self->monitor(sp);
  int code = -1;
  bool stopping = false;
  while (code < 0) {
    self->receive(
      [&](caf::down_msg& m) {
        if (stopping) code = 130;
        else if (!m.reason) code = 0;
        else code = 1;
        log_line("worker '" + opts.name + "': " +
                 (code == 0 ? std::string("the head ended the run") : render(m.reason)));
      },
      caf::after(std::chrono::milliseconds(250)) >> [&] {
        if (stop_requested() && !stopping) {
          stopping = true;
          self->send_exit(sp, caf::exit_reason::user_shutdown);
        }
      });
  }
  // Give the middleman a moment to send the answer to the head's end before the
  // caller tears the actor system down or exits.
  if (code == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return code;
}

}  // namespace troupe
