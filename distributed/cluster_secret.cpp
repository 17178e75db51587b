#include "distributed/cluster_secret.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.hpp"
#include "core/run_dir.hpp"

namespace troupe {

std::string cluster_secret_path(std::uint16_t port) {
  std::string base;
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run != nullptr && *run != '\0') base = run;
  else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') base = std::string(home) + "/.cache";
  else base = "/tmp";
  return base + "/troupe/cluster/port-" + std::to_string(port) + ".secret";
}

std::string make_cluster_secret() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 8; ++i) {  // 8 x 32 bits
    std::uint32_t v = rd();
    for (int k = 0; k < 8; ++k, v >>= 4) out.push_back(hex[v & 0xf]);
  }
  return out;
}

void write_cluster_secret(const std::string& path, const std::string& secret) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw system_error("cluster join secret: cannot create " + dir.string() + ": " + ec.message());
  // The folder holds secrets: its owner alone may list or enter it.
  ::chmod(dir.c_str(), 0700);
  try {
    write_file_atomically(path, secret + "\n", 0600);
  } catch (const system_error& e) {
    throw system_error(std::string("cluster join secret: ") + e.what());
  }
}

std::optional<std::string> read_cluster_secret(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string s;
  in >> s;
  if (s.empty()) return std::nullopt;
  return s;
}

bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace troupe
