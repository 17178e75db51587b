// What compute LibTorch sees in this process: asked once by `troupe version` and by
// actors that place a policy on a device. Declared without torch so callers stay light.
#pragma once

#include <string>

namespace troupe {

struct device_report {
  std::string torch_version;          // the LibTorch this binary runs against, e.g. "2.11.0"
  int cuda_devices = 0;               // visible CUDA devices (0 without a GPU or driver)
  int cpu_threads = 0;                // LibTorch's intra-op thread count
};

device_report probe_devices();

}  // namespace troupe
