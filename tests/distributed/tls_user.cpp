// "Another OpenSSL user" in a troupe process, for tls_interposition_test.cpp: a module
// that links libssl itself and is dlopened by a process that has troupe's OpenSSL
// wrappers (distributed/cluster_tls.cpp), as a plugin would be. It runs a TLS handshake
// between two SSL objects of its own over a memory BIO pair, with its own contexts,
// then sends one message each way.
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstring>

#include "tests/distributed/tls_user.hpp"

namespace {

int user_callback_calls = 0;

int accept_all(int, X509_STORE_CTX*) {  // a user's own callback that overrides OpenSSL
  ++user_callback_calls;
  return 1;
}

int keep_verdict(int preverify_ok, X509_STORE_CTX*) {  // a user's own callback that observes
  ++user_callback_calls;
  return preverify_ok;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) tls_user_result tls_user_handshake(const tls_user_request* rq) {
  tls_user_result out;
  user_callback_calls = 0;
  SSL_CTX* server_ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  if (server_ctx == nullptr || client_ctx == nullptr ||
      SSL_CTX_use_certificate_chain_file(server_ctx, rq->server_certificate) != 1 ||
      SSL_CTX_use_PrivateKey_file(server_ctx, rq->server_key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(client_ctx, rq->client_cafile, nullptr) != 1) {
    out.setup_failed = 1;
    return out;
  }
  SSL_verify_cb cb = rq->callback == tls_user_callback::none       ? nullptr
                     : rq->callback == tls_user_callback::accept_all ? &accept_all
                                                                     : &keep_verdict;
  SSL_CTX_set_verify(client_ctx, SSL_VERIFY_PEER, cb);

  SSL* server = SSL_new(server_ctx);
  SSL* client = SSL_new(client_ctx);
  BIO *server_bio = nullptr, *client_bio = nullptr;
  BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
  SSL_set_bio(server, server_bio, server_bio);
  SSL_set_bio(client, client_bio, client_bio);
  // Step both ends until each has finished or one failed for good.
  int c = 0, s = 0;
  for (int round = 0; round < 100 && (c != 1 || s != 1); ++round) {
    if (c != 1) {
      c = SSL_connect(client);
      if (c <= 0 && SSL_get_error(client, c) != SSL_ERROR_WANT_READ && SSL_get_error(client, c) != SSL_ERROR_WANT_WRITE)
        break;
    }
    if (s != 1) {
      s = SSL_accept(server);
      if (s <= 0 && SSL_get_error(server, s) != SSL_ERROR_WANT_READ && SSL_get_error(server, s) != SSL_ERROR_WANT_WRITE)
        break;
    }
  }
  out.handshake_ok = c == 1 && s == 1;
  out.verify_result = SSL_get_verify_result(client);
  out.user_callback_calls = user_callback_calls;
  if (out.handshake_ok) {
    char buf[16] = {0};
    const bool to_server = SSL_write(client, "ping", 4) == 4 && SSL_read(server, buf, sizeof buf) == 4 &&
                           std::memcmp(buf, "ping", 4) == 0;
    const bool to_client = SSL_write(server, "pong", 4) == 4 && SSL_read(client, buf, sizeof buf) == 4 &&
                           std::memcmp(buf, "pong", 4) == 0;
    out.messages_ok = to_server && to_client;
  }
  // Which library this module's SSL_CTX_set_verify resolved to: the wrappers' when
  // they are interposed on this module too.
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&SSL_CTX_set_verify), &info) != 0 && info.dli_fname != nullptr)
    std::strncpy(out.set_verify_library, info.dli_fname, sizeof out.set_verify_library - 1);
  SSL_free(client);
  SSL_free(server);
  SSL_CTX_free(client_ctx);
  SSL_CTX_free(server_ctx);
  ERR_clear_error();
  return out;
}
