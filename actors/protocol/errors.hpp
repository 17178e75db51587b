// troupe's error codes between actors, as a CAF error category ("troupe"). A handler
// that fails returns make_error(errc::..., "what and where") instead of throwing; a
// LibTorch or input exception is converted at the actor boundary (from_exception).
#pragma once

#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>

#include <cstdint>
#include <exception>
#include <string>

namespace troupe {

enum class errc : std::uint8_t {
  none = 0,
  bad_input,        // a message or file from outside was malformed
  system_failure,   // disk, permissions, a store that cannot be written
  worker_failed,    // a child actor crashed while handling the request
  timeout,          // a peer did not answer in time
  restart_limit,    // a supervisor gave up restarting a child
  stopped,          // the experiment was asked to stop
  internal,         // a bug: an exception of unknown type
};

// The category's atom: "troupe".
constexpr caf::atom_value errc_category = caf::atom("troupe");

std::string to_string(errc x);

caf::error make_error(errc code, std::string context);

// Maps an exception to an error: input_error -> bad_input, system_error ->
// system_failure, anything else -> internal; the context is the exception's text.
caf::error from_exception(const std::exception_ptr& ep);

// Makes an exception escaping one of `self`'s handlers end the actor with
// from_exception()'s error (which its supervisor records) instead of CAF's default,
// which prints to stderr and exits with a bare runtime_error.
void convert_exceptions(caf::scheduled_actor* self);

// Renders a caf::error of any category as one line, with its context.
std::string render(const caf::error& err);

// What a troupe error says (its context text alone), for wrapping it in another
// error without repeating "troupe: system_failure (...)"; render() for any other error.
std::string error_message(const caf::error& err);

}  // namespace troupe
