// The join secret of a cluster without TLS. Its head listens on loopback only (validate
// in actors/cluster_config.hpp), but any process of any user on the machine can connect
// there: the secret is what a worker must show to join. The head makes a fresh random
// one per start and writes it, readable by its user alone (0600, in a 0700 folder), to
// a file named by its port; a worker of the same user reads it from there, so local
// clusters need no flag. With TLS, certificates authenticate instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace troupe {

// ${XDG_RUNTIME_DIR:-$HOME/.cache}/troupe/cluster/port-<port>.secret
std::string cluster_secret_path(std::uint16_t port);

// 32 random bytes (std::random_device: the kernel's getrandom), as 64 hex digits.
std::string make_cluster_secret();

// Writes `secret` to `path` with mode 0600 (core/run_dir.hpp write_file_atomically),
// creating its folder with mode 0700. Throws system_error naming the path.
void write_cluster_secret(const std::string& path, const std::string& secret);

// The secret in `path` (whitespace around it ignored), or nullopt when it cannot be read.
std::optional<std::string> read_cluster_secret(const std::string& path);

// Equal, in time that depends on the lengths only (no early exit on the first difference).
bool same_secret(const std::string& a, const std::string& b);

}  // namespace troupe
