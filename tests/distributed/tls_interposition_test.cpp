// The OpenSSL wrappers of the cluster library (distributed/cluster_tls.hpp) come before
// libssl's own functions for everything in the process, not only for caf_openssl. That
// is the trade-off docs/ARCHITECTURE.md records; this test holds the wrappers to what
// they promise another OpenSSL user of the process: a module that links libssl itself
// (tls_user.cpp, dlopened like a plugin) gets the verdicts OpenSSL gives, keeps its own
// verify callback and its data; the one addition is a stderr line per refused
// handshake.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <string>

#include "distributed/cluster_tls.hpp"
#include "tests/distributed/tls_user.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

struct tls_user_module {
  tls_user_module() {
    handle = ::dlopen(TROUPE_TLS_USER, RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) handshake = reinterpret_cast<tls_user_handshake_fn>(::dlsym(handle, "tls_user_handshake"));
  }
  ~tls_user_module() {
    if (handle != nullptr) ::dlclose(handle);
  }
  void* handle = nullptr;
  tls_user_handshake_fn handshake = nullptr;
};

TEST(tls_interposition, another_openssl_user_of_the_process_gets_openssls_verdicts_and_keeps_its_callback) {
  testing::temp_dir dir;
  const std::string ours = dir / "ours", theirs = dir / "theirs";
  write_cluster_certs(ours, {"head"});
  write_cluster_certs(theirs, {"head"});
  const std::string cert = ours + "/head.crt", key = ours + "/head.key";
  tls_user_module user;
  ASSERT_NE(user.handshake, nullptr) << ::dlerror();
  const auto run = [&](const std::string& cafile, tls_user_callback cb, std::string& err) {
    const tls_user_request rq{cert.c_str(), key.c_str(), cafile.c_str(), cb};
    ::testing::internal::CaptureStderr();
    const auto r = user.handshake(&rq);
    err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(r.setup_failed, 0);
    return r;
  };
  std::string err;

  // The module's calls do reach the wrappers.
  auto trusted = run(ours + "/ca.crt", tls_user_callback::none, err);
  EXPECT_NE(std::string(trusted.set_verify_library).find("libtroupe_distributed"), std::string::npos)
    << trusted.set_verify_library;
  // A certificate its CA signed: accepted, and the data goes through unchanged.
  EXPECT_TRUE(trusted.handshake_ok);
  EXPECT_EQ(trusted.verify_result, X509_V_OK);
  EXPECT_TRUE(trusted.messages_ok);
  EXPECT_EQ(err, "");

  // Its own callback is the one that runs, and sees OpenSSL's verdicts.
  auto observed = run(ours + "/ca.crt", tls_user_callback::keep_verdict, err);
  EXPECT_TRUE(observed.handshake_ok);
  EXPECT_GE(observed.user_callback_calls, 1);
  EXPECT_TRUE(observed.messages_ok);

  // A certificate of a CA it does not trust: refused as OpenSSL refuses it. The wrappers
  // add one stderr line (the trade-off), and change nothing else.
  auto refused = run(theirs + "/ca.crt", tls_user_callback::none, err);
  EXPECT_FALSE(refused.handshake_ok);
  EXPECT_EQ(refused.verify_result, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_NE(err.find("troupe cluster: TLS connection to an unknown peer failed: certificate (/O=troupe cluster/CN=head) "
                     "failed verification: unable to get local issuer certificate"),
            std::string::npos)
    << err;

  // A callback of its own that accepts what OpenSSL would refuse stays in charge.
  auto overridden = run(theirs + "/ca.crt", tls_user_callback::accept_all, err);
  EXPECT_TRUE(overridden.handshake_ok);
  EXPECT_GE(overridden.user_callback_calls, 1);
  EXPECT_TRUE(overridden.messages_ok);
  EXPECT_EQ(err, "");
}

}  // namespace
}  // namespace troupe
