// Errors that leave troupe's plain classes as exceptions. Actors convert them to
// caf::error values at their boundary (actors/protocol/errors.hpp); the CLI turns them into one
// line on stderr and an exit code.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe {

// Input from outside was wrong: a config file, a command-line argument, a dataset, a
// message from a peer. The text names the source (file:line, key path, message) and
// what is wrong, so it can be printed alone. The CLI exits with code 2.
class input_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The machine refused something troupe needed: a directory it cannot create, a disk
// that is full, a store it cannot open. The CLI exits with code 1.
class system_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Returns strerror(errnum) as a std::string (thread-safe).
std::string errno_text(int errnum);

// A tensor shape for messages, "[2, 3]" (a torch tensor's: shape_text(t.sizes().vec())).
std::string shape_text(const std::vector<std::int64_t>& dims);

}  // namespace troupe
