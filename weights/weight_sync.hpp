// Weight updates between the trainer and the generators, in one process (the
// in-process transport of DESIGN.md "Weight sync"): the trainer publishes a snapshot of
// its parameters under a version number and sends generators a handle to it; the
// tensors themselves never pass through a mailbox or a serializer. The snapshot type
// is defined on the torch side (weights/weight_snapshot.hpp); this header names it only,
// so protocol headers stay free of torch.
#pragma once

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "weights/fp8_weights_config.hpp"

namespace troupe {

class weight_snapshot;  // weights/weight_snapshot.hpp

// A two-rank link that carries weights to one generator on a cluster worker
// (actors/policy/generator_pool.hpp): rank 0, the sender, listens on host:port.
struct weight_link {
  std::string host = "127.0.0.1";
  int port = 0;
  double timeout_s = 120;
  // gloo (host tensors on the wire) or nccl (CUDA tensors, GPU to GPU):
  // weight_sync.transport of the experiment config.
  std::string transport = "gloo";
  // Set (weight_sync.codec: fp8, from the config both ends share): the selected tensors
  // travel as E4M3 codes + scales, a quarter of their fp32 bytes. The trainer publishes
  // weights that went through the codec already; encoding those again gives the same
  // codes and scales, so the far end decodes the very weights a generator in the
  // trainer's process gets (weights_tests).
  std::optional<fp8_weights_config> fp8;
};

struct weight_update {
  std::int64_t version = 0;
  std::shared_ptr<const weight_snapshot> weights;  // immutable once published
};

}  // namespace troupe

// In-process only: a weight_update holds a pointer, so it cannot cross a process; the
// remote transports (Gloo, NCCL: weights/weight_transport.hpp) carry the tensors.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::weight_update)
