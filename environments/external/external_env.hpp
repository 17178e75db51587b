// The `external` environment: a bridge to an environment that runs in another process,
// in any language, speaking troupe's environment protocol (docs/env-protocol.md) over
// ZeroMQ and msgpack. Each instance is one DEALER socket and one remote episode slot;
// the env host's pool of instances is a pool of concurrent remote episodes.
//
//   env:
//     name: external
//     options: {endpoint: "tcp://127.0.0.1:5555", env: arithmetic, timeout_ms: "10000"}
//
// Failure is per episode, never per run. Every request has a deadline. A timeout, a
// dropped connection, a malformed reply, an error reply or a protocol mismatch throws
// (the env host records the episode as failed) with the reason and the server in the
// text:
//   external env 'guess' at tcp://127.0.0.1:5555: no reply to step within 2000 ms
// After a transport failure the instance drops its socket; the next reset() opens a
// fresh one and handshakes again, so the run goes on once the server is back.
//
// Security: traffic to a loopback or ipc:// endpoint may be plain; any other endpoint
// needs CURVE keys (encryption and server authentication) unless the config says
// `insecure_remote: "true"`.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config_binding.hpp"
#include "environments/external/env_protocol.hpp"
#include "environments/environment.hpp"

namespace troupe {

// The `env.options` of `external`, every default in one place.
// Loading this library registers the `external` environment. A library that must
// offer it (the env host's) calls this once, so that the linker keeps the dependency
// under --as-needed; it returns true and does nothing else.
bool external_environment_linked();

struct external_env_options {
  std::string endpoint = "tcp://127.0.0.1:5555";  // tcp://host:port, ipc://path or inproc://name
  std::string env;                                // the server's environment name (required)
  std::int64_t timeout_ms = 10000;                // reply deadline of each reset/step/ping
  std::int64_t connect_timeout_ms = 5000;         // deadline to connect and handshake
  std::int64_t heartbeat_ms = 1000;               // ZMTP heartbeat interval: finds dead peers; 0 is off
  std::int64_t max_message_bytes = std::int64_t{16} << 20;  // larger frames are refused both ways
  // CURVE: the server's public key (Z85, 40 characters), and this client's key pair.
  // Without a client pair, each connection makes a throwaway one. Each *_file names a
  // file holding the key alone or a ZeroMQ certificate (pyzmq's zmq.auth format).
  std::string curve_server_key, curve_server_key_file;
  std::string curve_public_key, curve_public_key_file;
  std::string curve_secret_key, curve_secret_key_file;
  bool insecure_remote = false;  // allow a non-loopback endpoint without CURVE

  template <class V>
  void describe(V& v) {
    v.field("endpoint", endpoint, "the server's ZeroMQ endpoint");
    v.field("env", env, "the environment name on the server");
    v.field("timeout_ms", timeout_ms, "milliseconds to wait for each reply", in_range<std::int64_t>(1, 86400000));
    v.field("connect_timeout_ms", connect_timeout_ms, "milliseconds to connect and handshake",
            in_range<std::int64_t>(1, 86400000));
    v.field("heartbeat_ms", heartbeat_ms, "ZMTP heartbeat interval; 0 is off", in_range<std::int64_t>(0, 3600000));
    v.field("max_message_bytes", max_message_bytes, "largest frame accepted or sent",
            in_range<std::int64_t>(1024, std::int64_t{1} << 30));
    v.field("curve_server_key", curve_server_key, "the server's CURVE public key (Z85)");
    v.field("curve_server_key_file", curve_server_key_file, "file with the server's public key or certificate");
    v.field("curve_public_key", curve_public_key, "this client's CURVE public key (Z85)");
    v.field("curve_public_key_file", curve_public_key_file, "file with this client's public key or certificate");
    v.field("curve_secret_key", curve_secret_key, "this client's CURVE secret key (Z85)");
    v.field("curve_secret_key_file", curve_secret_key_file, "file with this client's secret key or certificate");
    v.field("insecure_remote", insecure_remote, "allow a non-loopback endpoint without CURVE");
  }

  // Binds and checks `o` (unknown keys, ranges, the endpoint, the CURVE policy) and
  // reads key files into the key fields. Throws input_error naming the option.
  static external_env_options parse(const environment_options& o);
};

class external_env : public environment {
 public:
  explicit external_env(const environment_options& options);
  // Does not connect: the first reset() (or connect()) does.
  explicit external_env(external_env_options options);
  ~external_env() override;  // tells the server about an unfinished episode, best effort
  external_env(const external_env&) = delete;
  external_env& operator=(const external_env&) = delete;

  // Opens an episode on the server. An episode still open is closed first.
  observation reset(const task& t) override;
  // REQUIRES: reset() succeeded and the episode is not done.
  step_result step(const std::string& action) override;

  // Connects and handshakes now, when not connected; returns the server's environments.
  // Throws like reset(). Lets a caller check a server before a run starts.
  std::vector<environment_info> connect();
  // One ping/pong round trip on the current connection (connecting first if needed).
  void ping();

  const external_env_options& options() const { return opts_; }

 private:
  class connection;
  connection& connected();
  // Runs a request that expects `want` as its reply type; any failure drops the
  // connection (unless the reply was a well-formed error) and throws with the prefix.
  env_protocol::reply call(env_protocol::request& r, const char* want);
  std::string where() const;  // "external env 'guess' at tcp://...: "

  external_env_options opts_;
  // State below belongs to the one thread that drives this instance.
  std::unique_ptr<connection> conn_;  // null before the first use and after a failure
  std::string episode_;               // the open episode's token; empty when none
};

}  // namespace troupe
