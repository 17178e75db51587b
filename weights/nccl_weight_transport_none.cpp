// nccl_weight_transport.hpp in a build without NCCL (no nccl.h / libnccl at configure
// time, cmake/TroupeCuda.cmake): the transport exists, and constructing it says why it
// cannot work.
#include "weights/nccl_weight_transport.hpp"

#include "core/error.hpp"

namespace troupe {

struct nccl_weight_transport::impl {};

bool nccl_transport_built() { return false; }

nccl_weight_transport::nccl_weight_transport(const nccl_transport_options& o) : options_(o) {
  throw system_error(
      "weight transport (nccl): this troupe was built without NCCL (CMake found no nccl.h and libnccl beside the "
      "CUDA toolkit); rebuild on a machine with NCCL, or use the gloo transport");
}

nccl_weight_transport::~nccl_weight_transport() = default;
void nccl_weight_transport::send(std::int64_t, const named_tensors&) {}
std::int64_t nccl_weight_transport::receive(named_tensors&) { return 0; }
std::int64_t nccl_weight_transport::loopback(std::int64_t, const named_tensors&, named_tensors&) { return 0; }

}  // namespace troupe
