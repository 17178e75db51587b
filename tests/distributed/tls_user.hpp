// The interface of the tls_user test module (tls_user.cpp): plain C types, as it is
// looked up with dlsym.
#pragma once

enum class tls_user_callback : int { none, keep_verdict, accept_all };

struct tls_user_request {
  const char* server_certificate = nullptr;  // PEM chain the server presents
  const char* server_key = nullptr;
  const char* client_cafile = nullptr;  // what the client trusts
  tls_user_callback callback = tls_user_callback::none;  // the client's verify callback
};

struct tls_user_result {
  int setup_failed = 0;
  int handshake_ok = 0;
  long verify_result = -1;  // SSL_get_verify_result on the client
  int user_callback_calls = 0;
  int messages_ok = 0;  // one message each way after the handshake
  char set_verify_library[512] = {0};  // the file SSL_CTX_set_verify resolved to
};

using tls_user_handshake_fn = tls_user_result (*)(const tls_user_request*);
