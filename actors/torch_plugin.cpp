#include "actors/torch_plugin.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "core/error.hpp"

namespace troupe {

namespace {

constexpr const char* plugin_file = "libtroupe_torch.so";

std::vector<std::string> candidate_paths() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("TROUPE_TORCH_PLUGIN"); env != nullptr && *env != '\0') {
    out.emplace_back(env);
    return out;
  }
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path() / plugin_file).string());
    out.push_back((exe.parent_path().parent_path() / "lib" / "troupe" / plugin_file).string());
  }
  return out;
}

const torch_plugin_api* load() {
  std::string tried;
  for (const auto& path : candidate_paths()) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      tried += "\n  " + path + ": no such file";
      continue;
    }
    // RTLD_NOW: a missing LibTorch symbol is reported here, not in the middle of a run.
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      tried += "\n  " + path + ": " + ::dlerror();
      continue;
    }
    using entry_fn = const torch_plugin_api* (*)();
    auto entry = reinterpret_cast<entry_fn>(::dlsym(handle, torch_plugin_symbol));
    if (entry == nullptr) {
      tried += "\n  " + path + ": no symbol " + torch_plugin_symbol;
      continue;
    }
    const torch_plugin_api* api = entry();
    if (api == nullptr || api->abi_version != torch_plugin_api::current_abi) {
      tried += "\n  " + path + ": built for another troupe (plugin ABI " +
               std::to_string(api ? api->abi_version : -1) + ", expected " +
               std::to_string(torch_plugin_api::current_abi) + ")";
      continue;
    }
    return api;  // the handle stays open for the life of the process
  }
  throw system_error("cannot load the LibTorch plugin " + std::string(plugin_file) +
                     " (set TROUPE_TORCH_PLUGIN to its path); tried:" + tried);
}

}  // namespace

const torch_plugin_api& torch_plugin() {
  static std::once_flag once;
  static const torch_plugin_api* api = nullptr;
  std::call_once(once, [] { api = load(); });
  return *api;
}

}  // namespace troupe
