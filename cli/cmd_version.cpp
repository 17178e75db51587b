#include <caf/config.hpp>

#include <iostream>

#include "cli/commands.hpp"
#include "actors/torch_plugin.hpp"
#include "troupe/build_info.hpp"

namespace troupe::cli {

int cmd_version(const args& a) {
  if (wants_help(a)) {
    std::cout << "usage: troupe version\n\nPrints the versions troupe was built with and the devices LibTorch sees.\n";
    return 0;
  }
  namespace b = build_info;
  const auto dev = torch_plugin().probe_devices();  // loads LibTorch
  std::cout << "troupe " << b::troupe_version << " (" << b::build_type << ")\n"
            << "CAF " << b::caf_version << "\n"
            << "LibTorch " << b::torch_version << " (runtime " << dev.torch_version << ", built for CUDA "
            << b::torch_cuda_version << "; " << dev.cpu_threads << " CPU threads, " << dev.cuda_devices
            << " CUDA devices visible)\n";
  if (b::have_cuda) std::cout << "CUDA " << b::cuda_version << " (toolkit troupe's own kernels were built with)\n";
  else std::cout << "CUDA not built in\n";
  if (b::have_nccl) std::cout << "NCCL " << b::nccl_version << "\n";
  else std::cout << "NCCL not built in\n";
  return 0;
}

}  // namespace troupe::cli
