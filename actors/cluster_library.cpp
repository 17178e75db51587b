#include "actors/cluster_library.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "core/error.hpp"

namespace troupe {

namespace {

constexpr const char* library_file = "libtroupe_cluster.so";

std::vector<std::string> candidate_paths() {
  if (const char* env = std::getenv("TROUPE_CLUSTER_LIBRARY"); env != nullptr && *env != '\0') return {env};
  std::vector<std::string> out;
  Dl_info info{};
  // Beside the library holding this function (libtroupe_actors.so), wherever it is.
  if (::dladdr(reinterpret_cast<void*>(&cluster_library), &info) != 0 && info.dli_fname != nullptr)
    out.push_back((std::filesystem::path(info.dli_fname).parent_path() / library_file).string());
  out.emplace_back(library_file);  // the loader's own search (an installed library)
  return out;
}

const cluster_library_api* load() {
  std::string tried;
  for (const auto& path : candidate_paths()) {
    // RTLD_GLOBAL: its OpenSSL wrappers (distributed/cluster_tls.hpp) must come before
    // libssl's own symbols for caf_openssl.
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (handle == nullptr) {
      tried += "\n  " + path + ": " + ::dlerror();
      continue;
    }
    using entry_fn = const cluster_library_api* (*)();
    auto entry = reinterpret_cast<entry_fn>(::dlsym(handle, cluster_library_symbol));
    const cluster_library_api* api = entry != nullptr ? entry() : nullptr;
    if (api == nullptr || api->abi_version != cluster_library_api::current_abi) {
      tried += "\n  " + path + ": not a troupe cluster library of this build";
      continue;
    }
    return api;  // stays loaded for the life of the process
  }
  throw system_error("cannot load " + std::string(library_file) +
                     " (set TROUPE_CLUSTER_LIBRARY to its path); tried:" + tried);
}

}  // namespace

const cluster_library_api& cluster_library() {
  static std::once_flag once;
  static const cluster_library_api* api = nullptr;
  std::call_once(once, [] { api = load(); });
  return *api;
}

}  // namespace troupe
