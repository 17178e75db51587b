#include "distributed/cluster_tls.hpp"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <caf/actor_system_config.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>

#include "core/error.hpp"

namespace troupe {

namespace {

std::string ssl_error_text() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

int passphrase_cb(char* buf, int size, int, void* user) {
  const auto* pass = static_cast<const std::string*>(user);
  if (pass == nullptr || size <= 0) return 0;
  const int n = static_cast<int>(std::min<std::size_t>(pass->size(), static_cast<std::size_t>(size - 1)));
  std::memcpy(buf, pass->data(), static_cast<std::size_t>(n));
  buf[n] = '\0';
  return n;
}

// "cluster.tls.key" for a config prefix, "--key" for the command line's "--".
std::string key_name(const std::string& prefix, const std::string& field) {
  if (prefix != "--") return prefix + "." + field;
  return field == "certificate" ? "--cert" : field == "cafile" ? "--ca" : "--" + field;
}

void require_readable(const std::string& key, const std::string& path) {
  if (path.empty())
    throw input_error(key + ": empty; TLS needs certificate, key and cafile (`troupe cluster certs DIR` makes them)");
  std::ifstream in(path);
  if (!in) throw input_error(key + ": cannot read '" + path + "'");
}

// --- refusal reporting -----------------------------------------------------------

std::mutex sinks_mutex;
std::map<int, std::function<void(const std::string&)>>& sinks() {
  static std::map<int, std::function<void(const std::string&)>> s;
  return s;
}

// Marks an SSL whose refusal was already reported, so one refusal is one line.
int reported_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::string address_of_fd(int fd);

// The peer's address, remembered while the connection is up (SSL_accept/SSL_connect):
// by the time a refusal is reported the peer may have closed it, and getpeername()
// fails.
int address_index() {
  static const int index = SSL_get_ex_new_index(
    0, nullptr, nullptr, nullptr, [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
      delete static_cast<std::string*>(ptr);
    });
  return index;
}

void remember_peer(SSL* ssl) {
  if (ssl == nullptr || SSL_get_ex_data(ssl, address_index()) != nullptr) return;
  const std::string a = address_of_fd(SSL_get_fd(ssl));
  if (!a.empty()) SSL_set_ex_data(ssl, address_index(), new std::string(a));
}

std::string peer_of(const SSL* ssl) {
  if (const auto* a = static_cast<const std::string*>(SSL_get_ex_data(ssl, address_index()))) return *a;
  const std::string a = address_of_fd(SSL_get_fd(ssl));
  return a.empty() ? "an unknown peer" : a;
}

std::string address_of_fd(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char host[INET6_ADDRSTRLEN] = {0};
  int port = 0;
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

void report(SSL* ssl, const std::string& what) {
  if (SSL_get_ex_data(ssl, reported_index()) != nullptr) return;
  SSL_set_ex_data(ssl, reported_index(), reinterpret_cast<void*>(1));
  const std::string line = (SSL_is_server(ssl) ? "refused a connection from " : "TLS connection to ") + peer_of(ssl) +
                           (SSL_is_server(ssl) ? ": " : " failed: ") + what;
  std::cerr << "troupe cluster: " << line << std::endl;
  if (!SSL_is_server(ssl)) return;  // a node that failed to connect says so itself
  std::lock_guard<std::mutex> lock(sinks_mutex);
  for (const auto& [id, sink] : sinks()) sink(line);
}

// A certificate's common name; "" when it has none.
std::string common_name(X509* cert) {
  char cn[256] = {0};
  if (cert == nullptr || X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) <= 0)
    return "";
  return cn;
}

// --- verified peer names -------------------------------------------------------------

// "host|port" of each accepted peer whose certificate verified -> its CN. A new
// handshake from the same address and port overwrites its entry. An entry is needed only
// until the worker's join arrives, right after the handshake, so the map is simply
// cleared when it gets large.
std::mutex names_mutex;
std::map<std::string, std::string>& peer_names() {
  static std::map<std::string, std::string> m;
  return m;
}

std::string peer_key(std::string host, std::uint16_t port) {
  if (host.rfind("::ffff:", 0) == 0) host.erase(0, 7);
  return host + "|" + std::to_string(port);
}

// After a server-side handshake completes: the verified peer certificate's CN.
void remember_peer_name(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return;
  const std::string cn = common_name(cert);
  if (cn.empty()) return;
  const std::string where = peer_of(ssl);  // "host:port"; the host may hold colons (IPv6)
  const auto colon = where.rfind(':');
  if (colon == std::string::npos) return;
  const std::string host = where.substr(0, colon);
  const auto port = static_cast<std::uint16_t>(std::strtoul(where.c_str() + colon + 1, nullptr, 10));
  std::lock_guard<std::mutex> lock(names_mutex);
  if (peer_names().size() >= 4096) peer_names().clear();
  peer_names()[peer_key(host, port)] = cn;
}

// --- expected server names ------------------------------------------------------------

std::mutex server_names_mutex;
struct server_name_state {
  std::map<std::uint16_t, std::string> expected;  // port -> CN the server must present
  std::map<std::uint16_t, std::string> refused;   // port -> why the last one was refused
};
server_name_state& server_names() {
  static server_name_state s;
  return s;
}

// A chain that verified, seen from our side of an outgoing connection: at the leaf
// (depth 0), the server's name must be the one expected for its port. 1 accepts.
int check_server_name(SSL* ssl, X509_STORE_CTX* ctx) {
  if (SSL_is_server(ssl) || X509_STORE_CTX_get_error_depth(ctx) != 0) return 1;
  const std::string where = peer_of(ssl);
  const auto colon = where.rfind(':');
  if (colon == std::string::npos) return 1;
  const auto port = static_cast<std::uint16_t>(std::strtoul(where.c_str() + colon + 1, nullptr, 10));
  std::string expected;
  {
    std::lock_guard<std::mutex> lock(server_names_mutex);
    const auto it = server_names().expected.find(port);
    if (it == server_names().expected.end()) return 1;
    expected = it->second;
  }
  const std::string cn = common_name(X509_STORE_CTX_get_current_cert(ctx));
  if (cn == expected) return 1;
  const std::string why = "the head's certificate was issued for '" + cn + "', not '" + expected + "'";
  {
    std::lock_guard<std::mutex> lock(server_names_mutex);
    server_names().refused[port] = why;
  }
  X509_STORE_CTX_set_error(ctx, X509_V_ERR_HOSTNAME_MISMATCH);
  report(ssl, why);
  return 0;
}

// Observes OpenSSL's verdict on each certificate of the peer's chain and never turns a
// refusal into an acceptance; of a chain that verified, it refuses a server that is not
// the expected one (check_server_name).
int observe_verify(int preverify_ok, X509_STORE_CTX* ctx) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return preverify_ok;
  if (preverify_ok == 1) return check_server_name(ssl, ctx);
  std::string subject = "?";
  // The peer's own certificate (the chain's leaf), whichever link failed.
  if (X509* cert = X509_STORE_CTX_get0_cert(ctx)) {
    char buf[256];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
    subject = buf;
  }
  report(ssl, std::string("certificate (") + subject + ") failed verification: " +
                  X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
  return preverify_ok;
}

// After a handshake-driving call: a hard failure of a connection whose handshake had
// not finished before the call is a refusal (by us or by the peer). The state is taken
// before the call because a failure moves it to "error", which is not "finished".
void after_handshake_call(SSL* ssl, bool was_established, int ret) {
  if (ssl == nullptr || was_established) return;
  if (ret > 0) {
    if (SSL_is_init_finished(ssl) && SSL_is_server(ssl)) remember_peer_name(ssl);
    return;
  }
  const int err = SSL_get_error(ssl, ret);
  if (err != SSL_ERROR_SSL) return;  // would block, or a plain close
  const unsigned long e = ERR_peek_last_error();
  // A peer that hangs up mid-handshake (a node shutting down, a port probe) refused
  // nothing; a refusal is a failed verification or an alert.
  if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return;
  char buf[256] = "handshake failed";
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  report(ssl, std::string("TLS handshake failed (") + buf + ")");
}

template <class Fn>
Fn next_symbol(const char* name) {
  void* sym = ::dlsym(RTLD_NEXT, name);
  if (sym == nullptr) {
    std::cerr << "troupe: cannot find OpenSSL's " << name << ": " << ::dlerror() << std::endl;
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

}  // namespace

void check_tls_files(const tls_options& tls, const std::string& key_prefix) {
  require_readable(key_name(key_prefix, "certificate"), tls.certificate);
  require_readable(key_name(key_prefix, "key"), tls.key);
  require_readable(key_name(key_prefix, "cafile"), tls.cafile);
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), &SSL_CTX_free);
  if (!ctx) throw system_error("cannot create an OpenSSL context: " + ssl_error_text());
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.certificate.c_str()) != 1)
    throw input_error(key_name(key_prefix, "certificate") + ": '" + tls.certificate + "' is not a PEM certificate (" +
                      ssl_error_text() + ")");
  // Always a passphrase callback: without one OpenSSL would prompt on the terminal
  // for the passphrase of an encrypted key.
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(nullptr, &EVP_PKEY_free);
  if (FILE* f = std::fopen(tls.key.c_str(), "r")) {
    key.reset(PEM_read_PrivateKey(f, nullptr, passphrase_cb, const_cast<std::string*>(&tls.passphrase)));
    std::fclose(f);
  }
  if (!key)
    throw input_error(key_name(key_prefix, "key") + ": cannot load '" + tls.key + "'" +
                      (tls.passphrase.empty() ? " (an encrypted key needs the passphrase)" : " (wrong passphrase?)") +
                      " (" + ssl_error_text() + ")");
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx.get()), key.get()) != 1)
    throw input_error(key_name(key_prefix, "key") + ": '" + tls.key + "' is not the key of " +
                      key_name(key_prefix, "certificate") + " '" + tls.certificate + "'");
  if (SSL_CTX_load_verify_locations(ctx.get(), tls.cafile.c_str(), nullptr) != 1)
    throw input_error(key_name(key_prefix, "cafile") + ": '" + tls.cafile + "' holds no PEM CA certificate (" + ssl_error_text() +
                      ")");
  // Would the peers, trusting the same CA, accept this certificate?
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> vctx(X509_STORE_CTX_new(), &X509_STORE_CTX_free);
  if (!vctx || X509_STORE_CTX_init(vctx.get(), SSL_CTX_get_cert_store(ctx.get()),
                                   SSL_CTX_get0_certificate(ctx.get()), nullptr) != 1)
    throw system_error("cannot verify '" + tls.certificate + "': " + ssl_error_text());
  if (X509_verify_cert(vctx.get()) != 1)
    throw input_error(key_name(key_prefix, "certificate") + ": '" + tls.certificate + "' does not verify against " +
                      key_name(key_prefix, "cafile") + " '" + tls.cafile + "': " +
                      X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx.get())) +
                      "; peers trusting that CA would refuse it");
  ERR_clear_error();
}

void install_tls(caf::actor_system& sys, const tls_options& tls) {
  // actor_system keeps a reference to the caller's (non-const) actor_system_config and
  // caf_openssl reads these fields each time a connection opens.
  auto& cfg = const_cast<caf::actor_system_config&>(sys.config());
  const bool set = !cfg.openssl_certificate.empty() || !cfg.openssl_key.empty() || !cfg.openssl_cafile.empty();
  if (set && (cfg.openssl_certificate != tls.certificate || cfg.openssl_key != tls.key ||
              cfg.openssl_cafile != tls.cafile || cfg.openssl_passphrase != tls.passphrase))
    throw input_error("this process already uses the TLS certificate '" + cfg.openssl_certificate +
                      "'; one process has one TLS identity");
  cfg.openssl_certificate = tls.certificate;
  cfg.openssl_key = tls.key;
  cfg.openssl_passphrase = tls.passphrase;
  cfg.openssl_cafile = tls.cafile;
  cfg.openssl_capath.clear();
}

std::optional<std::string> tls_peer_name(const std::string& host, std::uint16_t port) {
  std::lock_guard<std::mutex> lock(names_mutex);
  const auto it = peer_names().find(peer_key(host, port));
  if (it == peer_names().end()) return std::nullopt;
  return it->second;
}

void expect_tls_server_name(std::uint16_t port, const std::string& name) {
  std::lock_guard<std::mutex> lock(server_names_mutex);
  server_names().refused.erase(port);
  if (name.empty())
    server_names().expected.erase(port);
  else
    server_names().expected[port] = name;
}

std::optional<std::string> tls_server_name_refusal(std::uint16_t port) {
  std::lock_guard<std::mutex> lock(server_names_mutex);
  const auto it = server_names().refused.find(port);
  if (it == server_names().refused.end()) return std::nullopt;
  return it->second;
}

int add_tls_refusal_sink(std::function<void(const std::string&)> sink) {
  static int next = 0;
  std::lock_guard<std::mutex> lock(sinks_mutex);
  sinks()[++next] = std::move(sink);
  return next;
}

void remove_tls_refusal_sink(int id) {
  std::lock_guard<std::mutex> lock(sinks_mutex);
  sinks().erase(id);
}

}  // namespace troupe

// --- the wrappers (see cluster_tls.hpp) ------------------------------------------
// Same signatures as <openssl/ssl.h>; each forwards to libssl's definition.
extern "C" {

__attribute__((visibility("default"))) void SSL_CTX_set_verify(SSL_CTX* ctx, int mode, SSL_verify_cb cb) {
  using fn = void (*)(SSL_CTX*, int, SSL_verify_cb);
  static const fn real = troupe::next_symbol<fn>("SSL_CTX_set_verify");
  if (cb == nullptr && (mode & SSL_VERIFY_PEER) != 0) cb = &troupe::observe_verify;
  real(ctx, mode, cb);
}

__attribute__((visibility("default"))) int SSL_read(SSL* ssl, void* buf, int num) {
  using fn = int (*)(SSL*, void*, int);
  static const fn real = troupe::next_symbol<fn>("SSL_read");
  const bool established = ssl != nullptr && SSL_is_init_finished(ssl);
  const int ret = real(ssl, buf, num);
  troupe::after_handshake_call(ssl, established, ret);
  return ret;
}

__attribute__((visibility("default"))) int SSL_write(SSL* ssl, const void* buf, int num) {
  using fn = int (*)(SSL*, const void*, int);
  static const fn real = troupe::next_symbol<fn>("SSL_write");
  const bool established = ssl != nullptr && SSL_is_init_finished(ssl);
  const int ret = real(ssl, buf, num);
  troupe::after_handshake_call(ssl, established, ret);
  return ret;
}

__attribute__((visibility("default"))) int SSL_accept(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = troupe::next_symbol<fn>("SSL_accept");
  troupe::remember_peer(ssl);
  const bool established = ssl != nullptr && SSL_is_init_finished(ssl);
  const int ret = real(ssl);
  troupe::after_handshake_call(ssl, established, ret);
  return ret;
}

__attribute__((visibility("default"))) int SSL_connect(SSL* ssl) {
  using fn = int (*)(SSL*);
  static const fn real = troupe::next_symbol<fn>("SSL_connect");
  troupe::remember_peer(ssl);
  const bool established = ssl != nullptr && SSL_is_init_finished(ssl);
  const int ret = real(ssl);
  troupe::after_handshake_call(ssl, established, ret);
  return ret;
}

}  // extern "C"
