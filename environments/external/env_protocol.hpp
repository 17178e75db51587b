// The external-environment wire protocol (docs/env-protocol.md is the spec): the
// messages troupe and an environment server exchange, and their msgpack encoding.
//
// Every message is one ZeroMQ frame holding one msgpack map with a `type`, a request
// `id` and the fields of that type. This header knows nothing of sockets: the client
// (environments/external/external_env.hpp) and C++ test or benchmark servers use it alike.
//
// Decoding is where outside bytes enter, so it is strict about what it needs and
// tolerant of what it does not: a missing or mistyped field is an input_error naming
// the field ("step_result: field 'rewards.correct': expected a number, got a string");
// fields it does not know are ignored, so servers may add their own. Sizes are bounded
// (`limits`) before anything is allocated for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "environments/environment.hpp"

namespace troupe::env_protocol {

// The version troupe speaks; a hello carries it and a server refuses others.
inline constexpr int version = 1;

struct limits {
  // Larger frames are refused by the socket (ZMQ_MAXMSGSIZE) and by decode_*().
  std::size_t max_frame_bytes = std::size_t{16} << 20;
  // Elements of any one list or map: stop strings, rewards, info, metadata, environments.
  std::size_t max_entries = 4096;
};

// What a client sends. Only the fields of `type` are encoded or decoded.
struct request {
  std::string type;  // "hello", "reset", "step", "close", "ping"
  std::uint64_t id = 0;  // chosen by the client, echoed in the reply; never 0
  int protocol = 0;      // hello
  std::string client;    // hello: who is asking, e.g. "troupe/0.1.0"
  std::string env;       // reset: the server's environment name
  task t;                // reset
  std::string episode;   // step, close: the server's episode token
  std::string action;    // step: the policy's text
};

// What a server sends.
struct reply {
  std::string type;  // "welcome", "observation", "step_result", "pong", "error"
  std::uint64_t id = 0;  // the request's id; 0 in an error about a request whose id was unreadable
  int protocol = 0;                            // welcome
  std::vector<environment_info> environments;  // welcome
  std::string episode;                         // observation: the new episode's token
  observation obs;                             // observation
  step_result result;                          // step_result
  std::string code;                            // error: machine-readable, e.g. "unknown_episode"
  std::string message;                         // error: for people
};

// Replaces `out` with the encoding of `m`.
void encode(const request& m, std::string& out);
void encode(const reply& m, std::string& out);

// Decode one frame. Throw input_error saying what is wrong: not msgpack, trailing
// bytes, not a map, an unknown type, a missing or mistyped field, a size over `lim`.
request decode_request(std::string_view frame, const limits& lim = {});
reply decode_reply(std::string_view frame, const limits& lim = {});

}  // namespace troupe::env_protocol
