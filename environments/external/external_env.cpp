#include "environments/external/external_env.hpp"

#include <zmq.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <zmq.hpp>

#include "core/error.hpp"
#include "troupe/build_info.hpp"

namespace troupe {

bool external_environment_linked() { return true; }

TROUPE_REGISTER_ENVIRONMENT("external", external_env,
                            "an environment served by another process over ZeroMQ + msgpack (docs/env-protocol.md)");

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The ZeroMQ context of every instance. Never destroyed: zmq_ctx_term waits for every
// socket to close, and an instance leaked at exit would hang the process there.
zmq::context_t& shared_context() {
  static auto* ctx = [] {
    auto* c = new zmq::context_t(1);
    c->set(zmq::ctxopt::max_sockets, 16384);  // two per instance; env.pool may be thousands
    return c;
  }();
  return *ctx;
}

// A failure of the transport (no reply, lost connection); the caller adds the prefix.
struct transport_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The connection dropped (as opposed to a deadline passing).
struct transport_lost : transport_failure {
  using transport_failure::transport_failure;
};
// What call() makes of it, so that reset() can retry on a fresh connection.
struct connection_dropped : system_error {
  using system_error::system_error;
};

// A request troupe will not send (over max_message_bytes): nothing left, the
// connection stays usable.
struct request_too_large : input_error {
  using input_error::input_error;
};

// An error reply: well-formed, so the connection stays usable.
struct server_refused : input_error {
  server_refused(const std::string& what, std::string c) : input_error(what), code(std::move(c)) {}
  std::string code;
};

long ms_until(clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - clock::now()).count();
  return left < 0 ? 0 : static_cast<long>(left) + 1;  // round up: a poll of 0 ms would spin
}

}  // namespace

// --- the connection: one DEALER socket and a monitor of its events -------------------

class external_env::connection {
 public:
  explicit connection(const external_env_options& o)
      : dealer_(shared_context(), zmq::socket_type::dealer), monitor_(shared_context(), zmq::socket_type::pair) {
    lim_.max_frame_bytes = static_cast<std::size_t>(o.max_message_bytes);
    static std::atomic<std::uint64_t> counter{0};
    const std::string addr = "inproc://troupe-external-env-monitor-" + std::to_string(counter++);
    const int events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
    if (zmq_socket_monitor(dealer_.handle(), addr.c_str(), events) != 0) throw zmq::error_t();
    monitor_.connect(addr);
    dealer_.set(zmq::sockopt::linger, 100);     // a last `close` may still leave
    dealer_.set(zmq::sockopt::immediate, 1);    // queue nothing for a server that is not there
    dealer_.set(zmq::sockopt::maxmsgsize, o.max_message_bytes);
    dealer_.set(zmq::sockopt::reconnect_ivl_max, 1000);
    if (o.heartbeat_ms > 0) {
      dealer_.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(o.heartbeat_ms));
      dealer_.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(3 * o.heartbeat_ms));
    }
    curve_ = !o.curve_server_key.empty();
    if (curve_) {
      std::string pub = o.curve_public_key, sec = o.curve_secret_key;
      if (pub.empty()) {  // a throwaway key pair: the server authenticates itself, not us
        char p[41], s[41];
        if (zmq_curve_keypair(p, s) != 0) throw zmq::error_t();
        pub = p;
        sec = s;
      }
      dealer_.set(zmq::sockopt::curve_serverkey, o.curve_server_key);
      dealer_.set(zmq::sockopt::curve_publickey, pub);
      dealer_.set(zmq::sockopt::curve_secretkey, sec);
    }
    dealer_.connect(o.endpoint);
  }

  ~connection() { zmq_socket_monitor(dealer_.handle(), nullptr, 0); }

  // Waits until the transport is up (TCP connected, ZMTP and CURVE handshakes done).
  void wait_ready(milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    for (;;) {
      zmq_pollitem_t items[] = {{dealer_.handle(), 0, ZMQ_POLLOUT, 0}, {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
      poll(items, deadline);
      if (items[1].revents & ZMQ_POLLIN) read_events();
      if (items[0].revents & ZMQ_POLLOUT) {
        ready_ = true;
        return;
      }
      if (clock::now() >= deadline)
        throw transport_failure("cannot connect within " + std::to_string(timeout.count()) + " ms" +
                                (last_event_.empty() ? std::string(" (is the server running?)")
                                                     : " (" + last_event_ + ")"));
    }
  }

  // Sends `r` with a fresh id and returns the reply with that id. Throws
  // transport_failure, or input_error for a malformed reply.
  env_protocol::reply call(env_protocol::request& r, milliseconds timeout) {
    const auto deadline = clock::now() + timeout;
    const std::string t = r.type;
    send(r, deadline);
    for (;;) {
      zmq_pollitem_t items[] = {{dealer_.handle(), 0, ZMQ_POLLIN, 0}, {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
      poll(items, deadline);
      if (items[1].revents & ZMQ_POLLIN) {
        read_events();
        if (lost_)
          throw transport_lost("the connection dropped while waiting for the reply to " + t + " (" + last_event_ + ")");
      }
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t msg;
        (void)dealer_.recv(msg, zmq::recv_flags::dontwait);
        if (msg.more()) {
          int frames = 1;
          for (; msg.more(); ++frames) (void)dealer_.recv(msg, zmq::recv_flags::dontwait);
          throw input_error("the reply to " + t + " has " + std::to_string(frames) +
                            " frames; the protocol sends one (no empty delimiter frame)");
        }
        auto rep = env_protocol::decode_reply(std::string_view(static_cast<const char*>(msg.data()), msg.size()), lim_);
        if (rep.id == r.id || (rep.type == "error" && rep.id == 0)) return rep;
        continue;  // a late reply to an earlier request: not ours
      }
      if (clock::now() >= deadline)
        throw transport_failure("no reply to " + t + " within " + std::to_string(timeout.count()) + " ms");
    }
  }

  // Sends without waiting for a reply (close); drops it if it cannot leave now.
  void send_only(env_protocol::request& r) {
    r.id = next_id_++;
    env_protocol::encode(r, buf_);
    (void)dealer_.send(zmq::const_buffer(buf_.data(), buf_.size()), zmq::send_flags::dontwait);
  }

  // True once the connection dropped after it was ready (the server exited or restarted).
  bool lost() {
    zmq_pollitem_t items[] = {{monitor_.handle(), 0, ZMQ_POLLIN, 0}};
    while (zmq_poll(items, 1, 0) > 0 && (items[0].revents & ZMQ_POLLIN)) read_events();
    return lost_;
  }

 private:
  void poll(zmq_pollitem_t* items, clock::time_point deadline) {
    for (;;) {
      if (zmq_poll(items, 2, ms_until(deadline)) >= 0) return;
      if (zmq_errno() != EINTR) throw zmq::error_t();
    }
  }

  void send(env_protocol::request& r, clock::time_point deadline) {
    r.id = next_id_++;
    env_protocol::encode(r, buf_);
    if (buf_.size() > lim_.max_frame_bytes)
      throw request_too_large("the " + r.type + " request is " + std::to_string(buf_.size()) +
                              " bytes, more than max_message_bytes (" + std::to_string(lim_.max_frame_bytes) + ")");
    // With ZMQ_IMMEDIATE a send only succeeds on an established connection; wait for
    // one (a server restarting between episodes) until the deadline.
    while (!dealer_.send(zmq::const_buffer(buf_.data(), buf_.size()), zmq::send_flags::dontwait)) {
      zmq_pollitem_t items[] = {{dealer_.handle(), 0, ZMQ_POLLOUT, 0}, {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
      poll(items, deadline);
      if (items[1].revents & ZMQ_POLLIN) read_events();
      if (lost_) throw transport_lost("the connection dropped before " + r.type + " could be sent (" + last_event_ + ")");
      if (!(items[0].revents & ZMQ_POLLOUT) && clock::now() >= deadline)
        throw transport_failure("cannot send " + r.type + ": not connected (" +
                                (last_event_.empty() ? "the server is not there" : last_event_) + ")");
    }
  }

  void read_events() {
    zmq::message_t head, addr;
    while (monitor_.recv(head, zmq::recv_flags::dontwait)) {
      if (head.more()) (void)monitor_.recv(addr, zmq::recv_flags::dontwait);
      if (head.size() < 6) continue;
      std::uint16_t event = 0;
      std::uint32_t value = 0;
      std::memcpy(&event, head.data(), 2);
      std::memcpy(&value, static_cast<const char*>(head.data()) + 2, 4);
      switch (event) {
        case ZMQ_EVENT_DISCONNECTED:
          if (ready_) {
            lost_ = true;
            last_event_ = "the server closed the connection, exited, or sent a frame over max_message_bytes";
          } else {  // a CURVE server drops a plain client, one with the wrong server key, or
                    // one whose key its allowlist (ZAP) does not hold, this way
            last_event_ = curve_ ? "the server dropped the connection during the handshake: is curve_server_key "
                                   "the server's public key, and does the server admit this client's key "
                                   "(curve_public_key, on its allowlist)?"
                                 : "the server dropped the connection during the handshake: does it require "
                                   "CURVE (curve_server_key)?";
          }
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
          last_event_ = std::string("handshake failed: ") + std::strerror(static_cast<int>(value));
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
          last_event_ = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                          ? "security mismatch: one side uses CURVE and the other does not"
                        : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                          ? "CURVE handshake failed: is curve_server_key the server's public key?"
                          : "ZMTP handshake failed (protocol error " + std::to_string(value) + ")";
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
          last_event_ = "the server refused this client's CURVE key (ZAP status " + std::to_string(value) + ")";
          break;
        default: break;
      }
    }
  }

  zmq::socket_t dealer_, monitor_;
  env_protocol::limits lim_;
  std::uint64_t next_id_ = 1;
  std::string buf_;          // the last encoded request, reused
  std::string last_event_;   // what the monitor last said went wrong, for messages
  bool curve_ = false, ready_ = false, lost_ = false;
};

// --- the environment ----------------------------------------------------------------

external_env::external_env(const environment_options& options) : external_env(external_env_options::parse(options)) {}

external_env::external_env(external_env_options options) : opts_(std::move(options)) {}

external_env::~external_env() {
  if (conn_ && !episode_.empty()) {
    env_protocol::request r;
    r.type = "close";
    r.episode = episode_;
    conn_->send_only(r);
  }
}

std::string external_env::where() const { return "external env '" + opts_.env + "' at " + opts_.endpoint + ": "; }

std::vector<environment_info> external_env::connect() {
  conn_.reset();
  episode_.clear();
  std::unique_ptr<connection> c;
  try {
    c = std::make_unique<connection>(opts_);
  } catch (const zmq::error_t& e) {  // out of sockets or file descriptors, say
    throw system_error(where() + "cannot open a socket: " + e.what());
  }
  const auto deadline = clock::now() + milliseconds(opts_.connect_timeout_ms);
  env_protocol::request hello;
  hello.type = "hello";
  hello.protocol = env_protocol::version;
  hello.client = std::string("troupe/") + build_info::troupe_version;
  env_protocol::reply rep;
  try {
    c->wait_ready(milliseconds(opts_.connect_timeout_ms));
    rep = c->call(hello, std::max(milliseconds(1), std::chrono::duration_cast<milliseconds>(deadline - clock::now())));
  } catch (const transport_failure& e) {
    throw system_error(where() + "handshake: " + e.what());
  } catch (const zmq::error_t& e) {
    throw system_error(where() + "handshake: ZeroMQ: " + e.what());
  } catch (const input_error& e) {
    throw input_error(where() + "malformed reply to hello: " + e.what());
  }
  if (rep.type == "error")
    throw input_error(where() + "the server refused the handshake (" + rep.code + "): " + rep.message +
                      (rep.code == "protocol_version"
                         ? " [troupe speaks protocol " + std::to_string(env_protocol::version) + "]"
                         : ""));
  if (rep.type != "welcome") throw input_error(where() + "malformed reply to hello: expected welcome, got " + rep.type);
  if (rep.protocol != env_protocol::version)
    throw input_error(where() + "the server speaks protocol " + std::to_string(rep.protocol) + ", troupe speaks " +
                      std::to_string(env_protocol::version));
  std::vector<std::string> names;
  for (const auto& e : rep.environments) names.push_back(e.name);
  if (std::find(names.begin(), names.end(), opts_.env) == names.end())
    throw input_error(where() + "the server has no environment '" + opts_.env + "'" + suggest(opts_.env, names));
  conn_ = std::move(c);
  return rep.environments;
}

external_env::connection& external_env::connected() {
  if (!conn_) connect();
  return *conn_;
}

env_protocol::reply external_env::call(env_protocol::request& r, const char* want) {
  auto& c = connected();  // throws with its own prefix
  env_protocol::reply rep;
  try {
    rep = c.call(r, milliseconds(opts_.timeout_ms));
  } catch (const request_too_large& e) {
    throw input_error(where() + e.what());
  } catch (const transport_lost& e) {
    conn_.reset();
    episode_.clear();
    throw connection_dropped(where() + e.what());
  } catch (const transport_failure& e) {
    conn_.reset();
    episode_.clear();
    throw system_error(where() + e.what());
  } catch (const zmq::error_t& e) {
    conn_.reset();
    episode_.clear();
    throw system_error(where() + "ZeroMQ failed during " + r.type + ": " + e.what());
  } catch (const input_error& e) {
    conn_.reset();
    episode_.clear();
    throw input_error(where() + "malformed reply to " + r.type + ": " + e.what());
  }
  if (rep.type == "error") {
    // The connection stays: the server answered in the protocol. Its episode is gone.
    episode_.clear();
    if (rep.code == "handshake_required" || rep.code == "protocol_version") conn_.reset();
    throw server_refused(where() + "the server answered " + r.type + " with error '" + rep.code + "': " + rep.message,
                         rep.code);
  }
  if (rep.type != want) {
    conn_.reset();
    episode_.clear();
    throw input_error(where() + "malformed reply to " + r.type + ": expected " + want + ", got " + rep.type);
  }
  return rep;
}

observation external_env::reset(const task& t) {
  // A server that went away between episodes (restarted, say) has forgotten our
  // handshake: start on a fresh connection rather than fail this episode.
  if (conn_ && conn_->lost()) {
    conn_.reset();
    episode_.clear();
  }
  if (conn_ && !episode_.empty()) {
    env_protocol::request close;
    close.type = "close";
    close.episode = episode_;
    conn_->send_only(close);
    episode_.clear();
  }
  env_protocol::request r;
  r.type = "reset";
  r.env = opts_.env;
  r.t = t;
  for (int attempt = 0;; ++attempt) {
    try {
      auto rep = call(r, "observation");
      episode_ = rep.episode;
      return std::move(rep.obs);
    } catch (const server_refused& e) {
      // A server that restarted without our noticing asks for a handshake: once.
      if (e.code != "handshake_required" || attempt > 0) throw;
    } catch (const connection_dropped&) {
      // The drop was not yet known when the reset left (a server that just exited or
      // restarted): nothing of this episode happened, so try once on a fresh connection.
      if (attempt > 0) throw;
    }
  }
}

step_result external_env::step(const std::string& action) {
  // A connection that dropped since reset() shows in call(): its monitor event is
  // already queued, so the wait for this step's reply ends at once.
  if (!conn_ || episode_.empty())
    throw input_error(where() + "step without an open episode (reset failed, or the episode is done)");
  env_protocol::request r;
  r.type = "step";
  r.episode = episode_;
  r.action = action;
  auto rep = call(r, "step_result");
  if (rep.result.done) episode_.clear();  // the server forgets a finished episode itself
  return std::move(rep.result);
}

void external_env::ping() {
  env_protocol::request r;
  r.type = "ping";
  call(r, "pong");
}

}  // namespace troupe
