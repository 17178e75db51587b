// The `external` environment against the reference Python server
// (examples/python_env/server.py), run as a subprocess on a free loopback port, healthy
// and misbehaving: every fault fails its episode with a clear error, and the next
// episode goes through once the server is healthy again. No test waits on a timeout
// longer than a second.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <functional>

#include "core/error.hpp"
#include "environments/external/external_env.hpp"
#include "tests/support/env_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

using testing::python;
using testing::server_process;
using testing::server_py;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << "got: " << (text)

class external_env_test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::python_has_zmq_and_msgpack())
      GTEST_SKIP() << "/usr/bin/python3 lacks zmq or msgpack (apt-get install python3-zmq python3-msgpack)";
  }

  std::unique_ptr<environment> client(const std::string& env, environment_options extra = {}) {
    // Generous deadlines for what should succeed (a loaded CI machine), short ones
    // (hang_timeout) where a test waits for a deadline to pass.
    environment_options o = {{"endpoint", server.endpoint}, {"env", env}, {"timeout_ms", "10000"},
                             {"connect_timeout_ms", "10000"}};
    for (auto& [k, v] : extra) o[k] = v;
    return make_environment("external", o);
  }

  static constexpr const char* hang_timeout = "500";

  static task arithmetic_task() { return {"arithmetic/train/1", "12+34=", {{"answer", "46"}}}; }
  static task guess_task(const std::string& secret = "42") { return {"guess/1", "", {{"secret", secret}}}; }

  // A whole single-turn episode that must succeed.
  static void expect_healthy_episode(environment& env) {
    auto obs = env.reset(arithmetic_task());
    EXPECT_EQ(obs.text, "12+34=");
    auto r = env.step("46\n");
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.rewards.at("correct"), 1.0);
  }

  server_process server;
};

TEST_F(external_env_test, single_turn_episode_is_judged_like_the_builtin_arithmetic) {
  server.start({"--port", "0"});
  auto remote = client("arithmetic");
  auto local = make_environment("arithmetic");
  for (std::string action : {"46\n", "46", "45\n", "046", "4 6", "abc", "", "-0", "46  \n", "99999999999999999999"}) {
    auto t = arithmetic_task();
    auto ro = remote->reset(t);
    auto lo = local->reset(t);
    EXPECT_EQ(ro.text, lo.text);
    EXPECT_EQ(ro.stop_strings, lo.stop_strings);
    auto r = remote->step(action), l = local->step(action);
    EXPECT_EQ(r.rewards, l.rewards) << "action '" << action << "'";
    EXPECT_EQ(r.info, l.info) << "action '" << action << "'";
    EXPECT_EQ(r.done, l.done);
  }
}

TEST_F(external_env_test, multi_turn_episode_gives_hints_until_done) {
  server.start({"--port", "0"});
  auto env = client("guess");
  auto obs = env->reset(guess_task("42"));
  EXPECT_EQ(obs.text, "Guess a number between 1 and 100.\n");
  auto r1 = env->step("50\n");
  EXPECT_FALSE(r1.done);
  EXPECT_EQ(r1.next.text, "lower\n");
  EXPECT_TRUE(r1.rewards.empty());
  auto r2 = env->step("25\n");
  EXPECT_EQ(r2.next.text, "higher\n");
  auto r3 = env->step("42\n");
  EXPECT_TRUE(r3.done);
  EXPECT_EQ(r3.rewards.at("solved"), 1.0);
  EXPECT_EQ(r3.info.at("turns"), "3");
  EXPECT_HAS(error_of([&] { env->step("1"); }), "step without an open episode");
}

TEST_F(external_env_test, episodes_on_separate_instances_run_concurrently) {
  server.start({"--port", "0"});
  auto a = client("guess"), b = client("guess");
  a->reset(guess_task("10"));
  b->reset(guess_task("90"));
  EXPECT_EQ(a->step("50").next.text, "lower\n");
  EXPECT_EQ(b->step("50").next.text, "higher\n");
  EXPECT_TRUE(a->step("10").done);
  EXPECT_TRUE(b->step("90").done);
}

TEST_F(external_env_test, a_pool_of_instances_keeps_one_episode_each) {
  server.start({"--port", "0"});
  std::vector<std::unique_ptr<environment>> pool;
  for (int i = 0; i < 64; ++i) {
    pool.push_back(client("guess"));
    pool.back()->reset(guess_task(std::to_string(i + 1)));
  }
  for (int i = 0; i < 64; ++i) {
    auto r = pool[static_cast<std::size_t>(i)]->step(std::to_string(i + 1));
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.rewards.at("solved"), 1.0) << i;
  }
}

TEST_F(external_env_test, a_server_crash_mid_episode_fails_it_and_a_restarted_server_serves_the_next) {
  server.start({"--port", "0", "--crash-after-steps", "1"});
  auto env = client("guess");
  env->reset(guess_task());
  EXPECT_FALSE(env->step("50").done);
  const auto err = error_of([&] { env->step("30"); });
  EXPECT_HAS(err, "external env 'guess' at " + server.endpoint + ": ");
  EXPECT_HAS(err, "the connection dropped while waiting for the reply to step");
  server.start({"--port", server.port});
  auto again = client("arithmetic", {{"endpoint", server.endpoint}});
  expect_healthy_episode(*again);
  env->reset(guess_task("7"));  // the crashed instance reconnects too
  EXPECT_TRUE(env->step("7").done);
}

TEST_F(external_env_test, a_hanging_step_times_out_and_the_next_episode_reconnects) {
  server.start({"--port", "0", "--hang-steps", "1"});
  auto env = client("arithmetic", {{"timeout_ms", hang_timeout}});
  env->reset(arithmetic_task());
  const auto err = error_of([&] { env->step("46"); });
  EXPECT_EQ(err, "external env 'arithmetic' at " + server.endpoint + ": no reply to step within 500 ms");
  expect_healthy_episode(*env);
}

TEST_F(external_env_test, malformed_replies_fail_the_episode_and_the_next_one_goes_through) {
  const std::pair<const char*, const char*> kinds[] = {
    {"bytes", "malformed reply to step: reply: not valid msgpack"},
    {"types", "malformed reply to step: step_result: field 'rewards.correct': expected a number, got a string"},
    {"missing", "malformed reply to step: step_result: missing field 'observation'"},
    {"frames", "malformed reply to step: the reply to step has 2 frames"},
    // ZeroMQ drops a frame over max_message_bytes (16 MiB) with its connection, unread.
    {"huge", "the connection dropped while waiting for the reply to step (the server closed the connection, "
             "exited, or sent a frame over max_message_bytes)"},
  };
  for (const auto& [kind, want] : kinds) {
    SCOPED_TRACE(kind);
    server.start({"--port", "0", "--malformed-steps", "1", "--malformed-kind", kind});
    auto env = client("arithmetic");
    env->reset(arithmetic_task());
    const auto err = error_of([&] { env->step("46"); });
    EXPECT_HAS(err, want);
    expect_healthy_episode(*env);
  }
}

TEST_F(external_env_test, a_request_over_max_message_bytes_is_refused_before_sending) {
  server.start({"--port", "0"});
  auto env = client("arithmetic", {{"max_message_bytes", "1024"}});
  auto err = error_of([&] { env->reset({"t", std::string(2000, '1'), {{"answer", "1"}}}); });
  EXPECT_HAS(err, "external env 'arithmetic' at " + server.endpoint + ": the reset request is 20");
  EXPECT_HAS(err, "bytes, more than max_message_bytes (1024)");
  expect_healthy_episode(*env);
}

TEST_F(external_env_test, a_wrong_protocol_version_is_refused_with_both_versions_named) {
  server.start({"--port", "0", "--protocol", "2"});
  auto env = client("arithmetic");
  auto err = error_of([&] { env->reset(arithmetic_task()); });
  EXPECT_HAS(err, "the server refused the handshake (protocol_version)");
  EXPECT_HAS(err, "troupe speaks protocol 1");
  server.start({"--port", server.port, "--welcome-protocol", "2"});  // a server that claims 2 anyway
  err = error_of([&] { env->reset(arithmetic_task()); });
  EXPECT_HAS(err, "the server speaks protocol 2, troupe speaks 1");
  server.start({"--port", server.port});
  expect_healthy_episode(*env);
}

TEST_F(external_env_test, a_server_that_goes_away_and_comes_back_serves_the_next_episode) {
  server.start({"--port", "0"});
  auto env = client("arithmetic");
  expect_healthy_episode(*env);
  const std::string port = server.port;
  auto down = client("arithmetic", {{"connect_timeout_ms", hang_timeout}});
  expect_healthy_episode(*down);
  server.stop();
  // Down: the episode fails within the connect timeout instead of hanging.
  auto err = error_of([&] { down->reset(arithmetic_task()); });
  EXPECT_HAS(err, "external env 'arithmetic' at tcp://127.0.0.1:" + port + ": ");
  EXPECT_TRUE(err.find("cannot connect within 500 ms") != std::string::npos ||
              err.find("cannot send reset") != std::string::npos)
    << err;
  server.start({"--port", port});
  expect_healthy_episode(*down);
  expect_healthy_episode(*env);
  // A restart between two episodes, unnoticed by the client, costs no episode.
  server.start({"--port", port});
  expect_healthy_episode(*env);
  // A restart within an episode loses that episode, with the reason, and only that one.
  auto game = client("guess", {{"endpoint", server.endpoint}});
  game->reset(guess_task());
  server.start({"--port", port});
  err = error_of([&] { game->step("50"); });
  EXPECT_HAS(err, "the connection dropped");
  game->reset(guess_task("3"));
  EXPECT_TRUE(game->step("3").done);
}

TEST_F(external_env_test, error_replies_fail_the_episode_and_keep_the_connection) {
  server.start({"--port", "0"});
  auto env = client("arithmetic");
  auto err = error_of([&] { env->reset({"t", "1+1=", {}}); });
  EXPECT_HAS(err, "the server answered reset with error 'bad_task': arithmetic task 't': metadata has no 'answer'");
  expect_healthy_episode(*env);
  auto typo = client("arithmetik");
  err = error_of([&] { typo->reset(arithmetic_task()); });
  EXPECT_HAS(err, "the server has no environment 'arithmetik' (did you mean 'arithmetic'?)");
}

TEST_F(external_env_test, ping_and_connect_report_the_server) {
  server.start({"--port", "0"});
  external_env env(environment_options{{"endpoint", server.endpoint}, {"env", "guess"}});
  auto envs = env.connect();
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(envs[0].name, "arithmetic");
  EXPECT_EQ(envs[1].name, "guess");
  env.ping();
}

TEST_F(external_env_test, curve_server_accepts_the_right_server_key_only) {
  testing::temp_dir keys;
  ASSERT_EQ(std::system((std::string(python) + " " + server_py + " --make-curve-keys '" + keys.path().string() +
                         "' >/dev/null").c_str()),
            0);
  server.start({"--port", "0", "--curve-secret-key-file", keys / "server.key_secret"});
  auto good = client("arithmetic", {{"curve_server_key_file", keys / "server.key"}});
  expect_healthy_episode(*good);
  auto with_client_keys = client("arithmetic", {{"curve_server_key_file", keys / "server.key"},
                                                {"curve_public_key_file", keys / "client.key"},
                                                {"curve_secret_key_file", keys / "client.key_secret"}});
  expect_healthy_episode(*with_client_keys);
  auto plain = client("arithmetic", {{"connect_timeout_ms", hang_timeout}});
  auto err = error_of([&] { plain->reset(arithmetic_task()); });
  EXPECT_HAS(err, "handshake: cannot connect within 500 ms (the server dropped the connection during the "
                  "handshake: does it require CURVE (curve_server_key)?)");
  auto wrong_key =
    client("arithmetic", {{"connect_timeout_ms", hang_timeout}, {"curve_server_key_file", keys / "client.key"}});
  err = error_of([&] { wrong_key->reset(arithmetic_task()); });
  EXPECT_HAS(err, "handshake: cannot connect within 500 ms (the server dropped the connection during the "
                  "handshake: is curve_server_key the server's public key, and does the server admit this "
                  "client's key (curve_public_key, on its allowlist)?)");
}

// The reference server admits only the client keys of its --curve-allow folder (ZAP):
// knowing the server's public key, which is public, is not enough.
TEST_F(external_env_test, a_curve_allowlist_admits_listed_client_keys_only) {
  testing::temp_dir keys, allowed;
  ASSERT_EQ(std::system((std::string(python) + " " + server_py + " --make-curve-keys '" + keys.path().string() +
                         "' >/dev/null").c_str()),
            0);
  std::filesystem::copy_file(keys / "client.key", allowed / "client.key");
  server.start({"--port", "0", "--curve-secret-key-file", keys / "server.key_secret", "--curve-allow",
                allowed.path().string()});
  auto listed = client("arithmetic", {{"curve_server_key_file", keys / "server.key"},
                                      {"curve_public_key_file", keys / "client.key"},
                                      {"curve_secret_key_file", keys / "client.key_secret"}});
  expect_healthy_episode(*listed);
  // A throwaway client key pair: the server knows it not.
  auto stranger = client("arithmetic", {{"connect_timeout_ms", hang_timeout}, {"curve_server_key_file", keys / "server.key"}});
  const std::string err = error_of([&] { stranger->reset(arithmetic_task()); });
  EXPECT_HAS(err, "handshake: cannot connect within 500 ms (the server dropped the connection during the handshake");
  EXPECT_HAS(err, "does the server admit this client's key (curve_public_key, on its allowlist)?");
}

// Off loopback the reference server will not serve plain text, nor CURVE to any client.
TEST_F(external_env_test, the_reference_server_refuses_to_listen_off_loopback_without_curve_and_an_allowlist) {
  testing::temp_dir dir;
  auto refused = [&](const std::string& args) {
    const std::string err = dir / "err.txt";
    const int status = std::system((std::string(python) + " " + server_py + " " + args + " >/dev/null 2>'" + err + "'").c_str());
    std::ifstream in(err);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(WEXITSTATUS(status), 2) << text;
    return text;
  };
  const std::string plain = refused("--endpoint tcp://0.0.0.0:0");
  EXPECT_HAS(plain, "tcp://0.0.0.0:0 is not a loopback address: serve it with CURVE");
  const std::string lookalike = refused("--endpoint tcp://127.evil.invalid:0");
  EXPECT_HAS(lookalike, "is not a loopback address");
  ASSERT_EQ(std::system((std::string(python) + " " + server_py + " --make-curve-keys '" + dir.path().string() +
                         "' >/dev/null").c_str()),
            0);
  const std::string open_curve = refused("--endpoint tcp://0.0.0.0:0 --curve-secret-key-file '" +
                                         (dir / "server.key_secret") + "'");
  EXPECT_HAS(open_curve, "name the clients it admits with --curve-allow DIR");
}

// Options are checked before anything connects.
TEST(external_env_options, remote_endpoints_need_curve_or_an_explicit_opt_out) {
  auto err = error_of([] { make_environment("external", {{"env", "x"}, {"endpoint", "tcp://10.1.2.3:5555"}}); });
  EXPECT_HAS(err, "env.options.endpoint: 'tcp://10.1.2.3:5555' is not on this machine");
  EXPECT_HAS(err, "curve_server_key");
  EXPECT_NO_THROW(make_environment("external", {{"env", "x"}, {"endpoint", "tcp://10.1.2.3:5555"},
                                                {"insecure_remote", "true"}}));
  EXPECT_NO_THROW(make_environment("external", {{"env", "x"}, {"endpoint", "tcp://10.1.2.3:5555"},
                                                {"curve_server_key", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"}}));
  EXPECT_NO_THROW(make_environment("external", {{"env", "x"}, {"endpoint", "tcp://localhost:5555"}}));
  // Local is what the host resolves to: a name that merely starts like 127.* is remote.
  EXPECT_HAS(error_of([] { make_environment("external", {{"env", "x"}, {"endpoint", "tcp://127.evil.invalid:5555"}}); }),
             "is not on this machine");
  EXPECT_NO_THROW(make_environment("external", {{"env", "x"}, {"endpoint", "ipc:///tmp/troupe-env"}}));
}

TEST(external_env_options, mistakes_name_the_option) {
  auto err = [](environment_options o) { return error_of([&] { make_environment("external", o); }); };
  EXPECT_HAS(err({{"endpoint", "tcp://127.0.0.1:5555"}}), "env.options.env: name the environment on the server");
  EXPECT_HAS(err({{"env", "x"}, {"timeout_ms", "0"}}), "env.options.timeout_ms");
  EXPECT_HAS(err({{"env", "x"}, {"timeout", "5"}}), "env.options.timeout: unknown key (did you mean 'timeout_ms'?)");
  EXPECT_HAS(err({{"env", "x"}, {"endpoint", "http://host:80"}}), "transport 'http' is not supported");
  EXPECT_HAS(err({{"env", "x"}, {"endpoint", "tcp://127.0.0.1:99999"}}), "port '99999' is not in 1-65535");
  EXPECT_HAS(err({{"env", "x"}, {"curve_server_key", "short"}}), "env.options.curve_server_key: not a CURVE key");
  EXPECT_HAS(err({{"env", "x"}, {"curve_server_key_file", "/nonexistent/server.key"}}),
             "env.options.curve_server_key_file: cannot read '/nonexistent/server.key'");
  EXPECT_HAS(err({{"env", "x"}, {"curve_public_key", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"}}),
             "give this client's public and secret keys together");
}

// The failure of a plain class thrown where the env host catches it: the type says who
// is at fault (input_error: the server's bytes; system_error: the transport).
TEST_F(external_env_test, failures_throw_troupe_error_types) {
  server.start({"--port", "0", "--hang-steps", "1", "--malformed-steps", "1"});
  auto env = client("arithmetic", {{"timeout_ms", hang_timeout}});
  env->reset(arithmetic_task());
  EXPECT_THROW(env->step("46"), system_error);
  env->reset(arithmetic_task());
  EXPECT_THROW(env->step("46"), input_error);
}

}  // namespace
}  // namespace troupe
