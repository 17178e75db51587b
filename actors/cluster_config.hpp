// The `cluster:` section: where the head listens, how long it waits for workers, the
// TLS files that authenticate every middleman connection, and the placement (which
// worker runs how many of each actor). distributed/cluster.hpp uses it; docs/cluster.md is
// the user guide. No torch, no CAF: the binary parses and prints it like any section.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config_binding.hpp"

namespace troupe {

// TLS for middleman connections (caf_openssl). All three files or none: a peer must
// present a certificate signed by `cafile`, and shows its own `certificate`.
struct tls_options {
  std::string certificate;  // PEM certificate of this node
  std::string key;          // PEM private key of this node
  std::string cafile;       // PEM CA certificate peers must be signed by
  std::string passphrase;   // of an encrypted key; empty for a plain one

  bool enabled() const { return !certificate.empty() || !key.empty() || !cafile.empty(); }

  template <class V>
  void describe(V& v) {
    v.field("certificate", certificate, "PEM certificate of this node; empty: no TLS (loopback only)");
    v.field("key", key, "PEM private key of the certificate");
    v.field("cafile", cafile, "PEM CA certificate: peers must present a certificate it signed");
    v.field("passphrase", passphrase,
            "passphrase of an encrypted key (stored in the run's config.yaml: prefer TROUPE_TLS_PASSPHRASE)");
  }
};

// A worker name: 1-64 of [A-Za-z0-9_.-], so it is safe in file names, events and logs.
// Returns what is wrong with `name`, or nullopt.
std::optional<std::string> check_worker_name(const std::string& name);

// One worker of the placement, by the name it joins with (`troupe worker --name`).
struct cluster_worker_section {
  std::string name;
  int generators = 0;
  int env_hosts = 0;
  int trainer_ranks = 0;

  template <class V>
  void describe(V& v) {
    v.field("name", name, "the worker's --name", [](const std::string& n) { return check_worker_name(n); });
    v.field("generators", generators, "generator actors this worker runs", at_least(0));
    v.field("env_hosts", env_hosts, "env host actors this worker runs", at_least(0));
    v.field("trainer_ranks", trainer_ranks, "data-parallel trainer ranks this worker runs", at_least(0));
  }
};

// Check of cluster.workers: every name once.
struct unique_worker_names {
  std::optional<std::string> operator()(const std::vector<cluster_worker_section>& ws) const {
    for (std::size_t i = 0; i < ws.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (ws[i].name == ws[j].name)
          return "workers[" + std::to_string(i) + "].name '" + ws[i].name + "' repeats workers[" + std::to_string(j) +
                 "].name; each worker joins under its own name";
    return std::nullopt;
  }
};

struct cluster_section {
  // Loopback by default: nothing is reachable from another host until TLS is set.
  std::string listen = "127.0.0.1:0";
  double join_timeout_s = 120;   // how long the head waits for the named workers
  double spawn_timeout_s = 600;  // how long one remote spawn may take (a model load)
  tls_options tls;
  std::vector<cluster_worker_section> workers;  // empty: everything runs in the head
  // The weight links and trainer ranks (c10d TCPStore, Gloo, NCCL) listen on the head's
  // cluster.listen host, and none of them encrypts or authenticates: off loopback they
  // need this set to "insecure-private-network", a network the user trusts.
  std::string data_plane = "loopback";

  template <class V>
  void describe(V& v) {
    v.field("listen", listen,
            "HOST:PORT the head listens on for workers; port 0 picks a free one. A non-loopback host needs tls");
    v.field("join_timeout_s", join_timeout_s, "how long the head waits for the named workers to join",
            greater_than(0.0));
    v.field("spawn_timeout_s", spawn_timeout_s, "how long one remote spawn (e.g. a model load) may take",
            greater_than(0.0));
    v.field("tls", tls, "TLS for every connection (troupe cluster certs DIR makes the files)");
    v.field("workers", workers, "the placement: one entry per worker, by name", unique_worker_names{});
    v.field("data_plane", data_plane,
            "loopback, or insecure-private-network: let the weight links and trainer ranks (unencrypted, "
            "unauthenticated) listen on a non-loopback cluster.listen host",
            one_of{"loopback", "insecure-private-network"});
  }
};

using cluster_config = cluster_section;

// HOST:PORT split and checked. `key` names the source in errors (cluster.listen,
// --join). Accepts a bracketed IPv6 host ("[::1]:7000"). Port 0 only where
// `allow_port_zero`.
struct host_port {
  std::string host;
  std::uint16_t port = 0;
};
host_port parse_host_port(const std::string& text, const std::string& key, bool allow_port_zero);

// The checks that need more than one field: cluster.listen parses, every worker has a
// name, a non-loopback listen address has TLS, and TLS names all three files. Throws
// input_error naming the key (cluster.listen, cluster.tls.key, ...). The files
// themselves are checked when the head starts (check_tls_files, cluster_tls.hpp).
void validate(const cluster_section& c);

}  // namespace troupe
