// TLS for the cluster's middleman connections, around caf_openssl.
//
// caf_openssl reads its files from the actor system's config (openssl.certificate,
// .key, .passphrase, .cafile) each time a connection opens, and requires a peer
// certificate signed by the CA once any of them is set. Two things it does not do,
// which troupe adds here:
//   - check the files up front. A missing file or a wrong passphrase makes caf_openssl
//     throw inside the middleman's thread, which ends the process; check_tls_files()
//     turns every such problem into an input_error naming the config key first.
//   - say why a peer was refused. caf_openssl drops a failed handshake silently. This
//     file wraps OpenSSL's SSL_CTX_set_verify (to add a verify callback that observes
//     OpenSSL's verdict, and never turns a refusal into an acceptance; it refuses on its
//     own only a server whose name is not the expected one, see
//     expect_tls_server_name) and the handshake-driving
//     calls (SSL_read, SSL_write, SSL_accept, SSL_connect: a failure before the
//     handshake finished), so each refusal becomes one stderr line and a call to every
//     registered refusal sink. The wrappers are found by the dynamic linker before
//     libssl's own symbols because libtroupe_actors precedes libssl in every troupe
//     executable's load order; the tests check that refusals are reported.
#pragma once

#include <caf/actor_system.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "actors/cluster_config.hpp"

namespace troupe {

// Loads the certificate, the key (with the passphrase) and the CA like caf_openssl
// will, and checks that the key matches the certificate and that the CA signed it.
// Throws input_error naming `key_prefix`.certificate / .key / .cafile and the file
// (`key_prefix` "--" names the command line's --cert / --key / --ca instead).
void check_tls_files(const tls_options& tls, const std::string& key_prefix);

// Points `sys`'s caf_openssl at `tls` (see above: it reads the files per connection).
// Call before the first TLS connection of `sys`; the actor_system_config that `sys`
// was built from must outlive it, as CAF requires anyway. Throws input_error if `sys`
// already uses other TLS files.
void install_tls(caf::actor_system& sys, const tls_options& tls);

// Refusals of incoming connections (a TLS handshake that failed, a peer certificate
// that did not verify) are reported to each sink as one line such as "refused a connection from
// 127.0.0.1:51234: certificate (CN=w1) failed verification: unable to get local issuer
// certificate". Failed outgoing connections only go to stderr. Sinks run on the
// middleman's thread: they must be quick and not block.
int add_tls_refusal_sink(std::function<void(const std::string& line)> sink);  // returns an id
void remove_tls_refusal_sink(int id);

// The common name of the certificate that the peer of an accepted (server-side) TLS
// connection presented and that verified, by the peer's address and port as the
// middleman reports them (an IPv4-mapped "::ffff:" prefix is ignored). nullopt when no
// such handshake from there is known. The head holds a joining worker to the name its
// certificate was issued for with it.
std::optional<std::string> tls_peer_name(const std::string& host, std::uint16_t port);

// Outgoing TLS connections to `port` (a worker's, to its head) must present a
// certificate whose common name is `name`, on top of the CA's signature and the server
// role that OpenSSL checks; otherwise the verify callback fails the handshake. So a CA
// that issued several head certificates (several clusters) cannot have one head pose
// as another. Only connections to that port are checked: another OpenSSL client in the
// process is left alone. An empty name removes the check.
void expect_tls_server_name(std::uint16_t port, const std::string& name);

// Why the last outgoing handshake to `port` was refused for its name ("the head's
// certificate was issued for 'x', not 'head'"), or nullopt.
std::optional<std::string> tls_server_name_refusal(std::uint16_t port);

// `troupe cluster certs DIR --nodes a,b`: a CA (ca.crt, ca.key) and, for each node, a
// certificate signed by it (NODE.crt, NODE.key), EC P-256, valid `days`. The node named
// `head` gets the head's role (extended key usage serverAuth and clientAuth); every other
// node a worker's (clientAuth only), so that a worker's certificate cannot serve as the
// head's. An existing CA in DIR is reused, so nodes can be added later; an existing node
// file is an input_error (never overwritten). Keys are written 0600, every file
// atomically. Returns the paths written.
std::vector<std::string> write_cluster_certs(const std::string& dir, const std::vector<std::string>& nodes,
                                             int days = 825, const std::string& head = "head");

}  // namespace troupe
