// write_cluster_certs (distributed/cluster_tls.hpp): a quick-start CA and node certificates
// with OpenSSL's C API, so no `openssl` binary or shell script is needed.
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "distributed/cluster_tls.hpp"
#include "core/error.hpp"
#include "core/run_dir.hpp"

namespace troupe {

namespace {

namespace fs = std::filesystem;

struct free_key {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct free_cert {
  void operator()(X509* c) const { X509_free(c); }
};
struct free_bio {
  void operator()(BIO* b) const { BIO_free(b); }
};
using key_ptr = std::unique_ptr<EVP_PKEY, free_key>;
using cert_ptr = std::unique_ptr<X509, free_cert>;
using bio_ptr = std::unique_ptr<BIO, free_bio>;

[[noreturn]] void fail(const std::string& what) {
  std::string detail;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    detail += (detail.empty() ? "" : "; ") + std::string(buf);
  }
  throw system_error("cluster certs: " + what + (detail.empty() ? "" : " (" + detail + ")"));
}

std::string bio_text(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string pem_of(EVP_PKEY* key) {
  bio_ptr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("cannot encode a key");
  return bio_text(b.get());
}

std::string pem_of(X509* cert) {
  bio_ptr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), cert) != 1) fail("cannot encode a certificate");
  return bio_text(b.get());
}

key_ptr read_key(const std::string& path) {
  bio_ptr b(BIO_new_file(path.c_str(), "r"));
  if (!b) throw input_error("cluster certs: cannot read '" + path + "'");
  key_ptr k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) throw input_error("cluster certs: '" + path + "' is not a plain PEM private key");
  return k;
}

cert_ptr read_cert(const std::string& path) {
  bio_ptr b(BIO_new_file(path.c_str(), "r"));
  if (!b) throw input_error("cluster certs: cannot read '" + path + "'");
  cert_ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) throw input_error("cluster certs: '" + path + "' is not a PEM certificate");
  return c;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) fail("cannot add extension " + value);
  X509_EXTENSION_free(ext);
}

// A certificate for `cn` and `key`, signed by `issuer_key` (self-signed when `issuer`
// is null: the CA).
// `server`: the head's certificate, which may serve TLS; the others may only connect.
cert_ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, int days,
                   bool server = false) {
  cert_ptr cert(X509_new());
  if (!cert) fail("cannot allocate a certificate");
  X509_set_version(cert.get(), 2);  // X.509 v3
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) fail("no random bytes for a serial number");
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  if (bn == nullptr || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) == nullptr) fail("serial number");
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60 * 60);  // an hour of clock skew
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 24 * 60 * 60);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("troupe cluster"), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  add_extension(cert.get(), signer, NID_subject_key_identifier, "hash");
  if (issuer == nullptr) {
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), signer, NID_authority_key_identifier, "keyid");
    add_extension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), signer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
    // The head serves the cluster's connections; a worker only makes them. OpenSSL's
    // clients check the server's certificate for serverAuth, so a worker's key cannot
    // stand in for the head.
    add_extension(cert.get(), signer, NID_ext_key_usage, server ? "serverAuth,clientAuth" : "clientAuth");
    add_extension(cert.get(), signer, NID_subject_alt_name, "DNS:" + cn + ",DNS:localhost,IP:127.0.0.1");
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) fail("cannot sign the certificate of " + cn);
  return cert;
}

key_ptr make_key() {
  key_ptr k(EVP_EC_gen("P-256"));
  if (!k) fail("cannot generate an EC P-256 key");
  return k;
}

}  // namespace

std::vector<std::string> write_cluster_certs(const std::string& dir, const std::vector<std::string>& nodes,
                                             int days, const std::string& head) {
  if (nodes.empty()) throw input_error("cluster certs: --nodes names no node");
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (auto bad = check_worker_name(nodes[i])) throw input_error("cluster certs: --nodes: " + *bad);
    if (nodes[i] == "ca") throw input_error("cluster certs: --nodes: 'ca' is the CA's own file name");
    for (std::size_t j = 0; j < i; ++j)
      if (nodes[i] == nodes[j]) throw input_error("cluster certs: --nodes names '" + nodes[i] + "' twice");
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw system_error("cluster certs: cannot create '" + dir + "': " + ec.message());
  const fs::path root(dir);
  for (const auto& n : nodes)
    for (const char* ext : {".crt", ".key"})
      if (fs::exists(root / (n + ext)))
        throw input_error("cluster certs: '" + (root / (n + ext)).string() +
                          "' exists; remove it to make a new one, or pick another node name");

  std::vector<std::string> written;
  const std::string ca_crt = (root / "ca.crt").string(), ca_key_path = (root / "ca.key").string();
  key_ptr ca_key;
  cert_ptr ca;
  const bool have_crt = fs::exists(ca_crt), have_key = fs::exists(ca_key_path);
  if (have_crt != have_key)
    throw input_error("cluster certs: '" + dir + "' has " + (have_crt ? "ca.crt without ca.key" : "ca.key without ca.crt") +
                      "; remove it or restore the pair");
  if (have_crt) {  // add nodes to an existing CA
    ca_key = read_key(ca_key_path);
    ca = read_cert(ca_crt);
    if (X509_check_private_key(ca.get(), ca_key.get()) != 1)
      throw input_error("cluster certs: '" + ca_key_path + "' is not the key of '" + ca_crt + "'");
  } else {
    ca_key = make_key();
    // A name of its own, so that logs tell two clusters' CAs apart.
    unsigned char id[4];
    if (RAND_bytes(id, sizeof(id)) != 1) fail("no random bytes for the CA's name");
    char hex[9];
    std::snprintf(hex, sizeof(hex), "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
    ca = make_cert(std::string("troupe cluster CA ") + hex, ca_key.get(), nullptr, ca_key.get(), days + 365);
    // The key first: a crash between the two leaves a key without a certificate,
    // which the check above reports, never a CA certificate whose key is lost.
    write_file_atomically(ca_key_path, pem_of(ca_key.get()), 0600);
    write_file_atomically(ca_crt, pem_of(ca.get()));
    written.push_back(ca_crt);
    written.push_back(ca_key_path);
  }
  for (const auto& n : nodes) {
    key_ptr key = make_key();
    cert_ptr cert = make_cert(n, key.get(), ca.get(), ca_key.get(), days, n == head);
    const std::string crt_path = (root / (n + ".crt")).string(), key_path = (root / (n + ".key")).string();
    write_file_atomically(key_path, pem_of(key.get()), 0600);
    write_file_atomically(crt_path, pem_of(cert.get()));
    written.push_back(crt_path);
    written.push_back(key_path);
  }
  return written;
}

}  // namespace troupe
