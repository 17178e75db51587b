// `troupe worker` (serve a cluster head) and `troupe cluster certs` (quick-start TLS
// files). docs/cluster.md is the guide; distributed/cluster.hpp the machinery.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstdlib>
#include <iostream>

#include "distributed/cluster.hpp"
#include "distributed/cluster_tls.hpp"
#include "actors/system.hpp"
#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/stop.hpp"
#include "environments/plugin.hpp"

namespace troupe::cli {

namespace {

constexpr const char* worker_usage = R"(usage: troupe worker --join HOST:PORT --name NAME [options]

Joins the cluster head at HOST:PORT (a `troupe run` whose config has a cluster:
section) and runs the actors it asks for, until the head ends the run.

  --join HOST:PORT    the head's cluster.listen address (it prints it when it starts)
  --name NAME         this worker's name in the head's cluster.workers
  --cert FILE         this node's TLS certificate (PEM); with --key and --ca, every
  --key FILE          connection is TLS and the head must present a certificate
  --ca FILE           signed by the CA in --ca (`troupe cluster certs DIR`)
  --passphrase TEXT   of an encrypted --key (or TROUPE_TLS_PASSPHRASE)
  --head-name NAME    with TLS: the name the head's certificate must be issued for
                      (default: head, as `troupe cluster certs --head` names it)
  --secret-file FILE  without TLS: the head's join secret (default: the file the head
                      writes, readable by its user only, in
                      ${XDG_RUNTIME_DIR:-~/.cache}/troupe/cluster/port-PORT.secret)
  --timeout SECONDS   keep trying to reach the head this long (default 60)
  --threads N         actor scheduler threads (default: one per core)
  --plugin PATH       load an environment module first (like `troupe envs --plugin`)

A head on another host needs TLS; a head on this one lets in workers of its own user
(they can read its join secret). Exit codes: 0 the head ended the run, 1 the head
went away or could not be reached, 2 bad options or a refused join, 130 Ctrl-C.
See docs/cluster.md.
)";

constexpr const char* cluster_usage = R"(usage: troupe cluster certs DIR [--nodes NAME,NAME,...] [--head NAME] [--days N]

Writes a CA (DIR/ca.crt, DIR/ca.key) and, for each node, a certificate signed by it
(DIR/NAME.crt, DIR/NAME.key; EC P-256; keys readable by you only). An existing CA in
DIR is reused, so nodes can be added later; existing node files are never overwritten.

  --nodes a,b,...   node names (default: head,worker)
  --head NAME       the node whose certificate may serve as the head (default: head);
                    the others' may only join, so a worker's key cannot pose as the head
  --days N          validity of the node certificates (default 825)

Give every node its NAME.crt, NAME.key and ca.crt; keep ca.key off the workers.
See docs/cluster.md.
)";

std::string value_of(const args& a, std::size_t& i, const char* cmd) {
  if (i + 1 >= a.size()) throw input_error(std::string(cmd) + ": " + a[i] + " needs a value");
  return a[++i];
}

double parse_seconds(const std::string& text, const std::string& flag) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v > 0) || v > 1e7)
    throw input_error("worker " + flag + ": expected a positive number of seconds, got '" + text + "'");
  return v;
}

}  // namespace

int cmd_worker(const args& a) {
  if (wants_help(a)) {
    std::cout << worker_usage;
    return 0;
  }
  worker_options opts;
  std::string join;
  system_section sys_section;
  std::vector<std::string> plugins;
  if (const char* p = std::getenv("TROUPE_TLS_PASSPHRASE")) opts.tls.passphrase = p;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string& x = a[i];
    if (x == "--join") join = value_of(a, i, "worker");
    else if (x == "--name") opts.name = value_of(a, i, "worker");
    else if (x == "--cert") opts.tls.certificate = value_of(a, i, "worker");
    else if (x == "--key") opts.tls.key = value_of(a, i, "worker");
    else if (x == "--ca") opts.tls.cafile = value_of(a, i, "worker");
    else if (x == "--passphrase") opts.tls.passphrase = value_of(a, i, "worker");
    else if (x == "--head-name") opts.head_name = value_of(a, i, "worker");
    else if (x == "--secret-file") opts.secret_file = value_of(a, i, "worker");
    else if (x == "--timeout") opts.join_timeout_s = parse_seconds(value_of(a, i, "worker"), "--timeout");
    else if (x == "--plugin") plugins.push_back(value_of(a, i, "worker"));
    else if (x == "--threads") {
      const std::string v = value_of(a, i, "worker");
      if (v.empty() || v.size() > 4 || v.find_first_not_of("0123456789") != std::string::npos)
        throw input_error("worker --threads: expected a whole number, got '" + v + "'");
      sys_section.threads = std::stoi(v);
    } else throw input_error("worker: unknown argument '" + x + "' (see troupe worker --help)");
  }
  if (join.empty()) throw input_error("worker: --join HOST:PORT is required (see troupe worker --help)");
  if (opts.name.empty()) throw input_error("worker: --name NAME is required (see troupe worker --help)");
  const auto where = parse_host_port(join, "worker --join", false);
  opts.head_host = where.host;
  opts.head_port = where.port;
  for (const auto& p : plugins) load_environment_plugin(p);

  install_stop_handlers();
  caf::actor_system_config cfg;
  configure_actor_system(cfg, sys_section);
  caf::actor_system sys{cfg};
  const int code = run_worker(sys, opts);
  // A worker keeps nothing (the run store is the head's) and its actors have been told
  // to stop: it exits without waiting for CAF to tear the actor system down. That
  // teardown waits for every detached actor to be destroyed, and once in a while
  // (seen in tests) one stays referenced after its connection is gone, so a finished
  // worker would hang instead of exiting.
  std::cout.flush();
  std::cerr.flush();
  std::_Exit(code);
}

int cmd_cluster(const args& a) {
  if (wants_help(a) || a.empty()) {
    (a.empty() ? std::cerr : std::cout) << cluster_usage;
    return a.empty() ? 2 : 0;
  }
  if (a[0] != "certs") {
    std::cerr << "troupe cluster: unknown action '" << a[0] << "'\n" << cluster_usage;
    return 2;
  }
  std::string dir;
  std::string nodes = "head,worker";
  std::string head = "head";
  int days = 825;
  for (std::size_t i = 1; i < a.size(); ++i) {
    if (a[i] == "--nodes") nodes = value_of(a, i, "cluster certs");
    else if (a[i] == "--head") head = value_of(a, i, "cluster certs");
    else if (a[i] == "--days") {
      const std::string v = value_of(a, i, "cluster certs");
      if (v.empty() || v.size() > 5 || v.find_first_not_of("0123456789") != std::string::npos || std::stoi(v) < 1)
        throw input_error("cluster certs --days: expected a whole number of days >= 1, got '" + v + "'");
      days = std::stoi(v);
    } else if (a[i].rfind("--", 0) == 0) throw input_error("cluster certs: unknown option '" + a[i] + "'");
    else if (dir.empty()) dir = a[i];
    else throw input_error("cluster certs: unexpected argument '" + a[i] + "'");
  }
  if (dir.empty()) throw input_error("cluster certs: which directory? (troupe cluster certs DIR)");
  std::vector<std::string> names;
  for (std::size_t start = 0; start <= nodes.size();) {
    const auto comma = std::min(nodes.find(',', start), nodes.size());
    names.push_back(nodes.substr(start, comma - start));
    start = comma + 1;
  }
  for (const auto& path : write_cluster_certs(dir, names, days, head)) std::cout << "wrote " << path << '\n';
  return 0;
}

}  // namespace troupe::cli
