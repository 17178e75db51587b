#include "policies/device.hpp"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

namespace troupe {

device_report probe_devices() {
  device_report r;
  r.torch_version = TORCH_VERSION;
  // device_count() is 0 (not an error) when the CUDA build meets no driver or GPU.
  r.cuda_devices = static_cast<int>(torch::cuda::device_count());
  r.cpu_threads = at::get_num_threads();
  return r;
}

}  // namespace troupe
