// The weight_transport (weights/weight_transport.hpp) for CUDA tensors across processes:
// NCCL, one GPU per rank. Rank 0 broadcasts its weights to ranks 1 .. world_size - 1 in
// buckets, like gloo_weight_transport, but device to device:
//   - rendezvous: rank 0 serves a c10d TCPStore on host:port, makes the ncclUniqueId and
//     publishes it there; every rank reads it and calls ncclCommInitRankConfig on its
//     device, in NCCL's non-blocking mode;
//   - each update: a header (version, tensor count, plan hash, bytes) and then the
//     buckets, on two CUDA streams of the transport's own: one packs (and FP8-encodes
//     with weights/fp8_codec.cu) on the sender, or unpacks (and FP8-decodes straight into
//     the receiver's tensors) on a receiver, while the other runs the broadcast of the
//     neighbouring bucket (double buffering, as in gloo_weight_transport);
//   - never a hang: the host waits for the streams by polling, and when timeout_s passes,
//     or NCCL reports an error, it calls ncclCommAbort and throws system_error. The
//     transport is then unusable (every later call throws).
// Ordering with LibTorch: the streams first wait for LibTorch's current stream on the
// device (the weights may still be being written), and send()/receive() return only once
// everything they queued has finished.
//
// One GPU allows a one-rank communicator only (NCCL refuses two ranks on one device). With
// world_size 1, rank 0 can loopback(): send to itself through the whole path (buckets,
// FP8 encode, broadcast, decode), which is what the GPU tests and the bench use.
//
// Built only when CMake found NCCL (TROUPE_HAVE_NCCL, cmake/TroupeCuda.cmake); otherwise
// the constructor throws system_error saying troupe was built without NCCL.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "weights/weight_transport.hpp"

namespace troupe {

struct nccl_transport_options {
  std::string host = "127.0.0.1";  // of rank 0's TCPStore (the rendezvous only)
  int port = 29500;
  int rank = 0;                    // 0 sends, 1 .. world_size - 1 receive
  int world_size = 2;
  int device = 0;                  // CUDA device index of this rank
  double timeout_s = 300;          // rendezvous, communicator set-up, and each update
  std::int64_t bucket_bytes = std::int64_t{64} << 20;
  // Set: fp32 and bf16 tensors that fp8 selects travel as E4M3 codes + block scales (other
  // dtypes travel raw). Sender and receivers must agree (the plan hash checks it).
  std::optional<fp8_weights_config> fp8;
  bool double_buffer = true;  // as gloo_transport_options::double_buffer
};

// Whether this troupe was built with NCCL.
bool nccl_transport_built();

class nccl_weight_transport : public weight_transport {
 public:
  // Blocks until every rank has joined. Throws input_error for bad options (rank, port,
  // timeout, bucket_bytes, fp8, device), system_error when built without NCCL, when the
  // device is missing, or when the rendezvous or NCCL's set-up fails or times out.
  explicit nccl_weight_transport(const nccl_transport_options& options);
  ~nccl_weight_transport() override;
  nccl_weight_transport(const nccl_weight_transport&) = delete;
  nccl_weight_transport& operator=(const nccl_weight_transport&) = delete;

  // Rank 0 only; collective (every receiver calls receive()). The tensors must be CUDA
  // tensors on options.device (input_error naming the first that is not).
  void send(std::int64_t version, const named_tensors& weights) override;
  // Ranks other than 0. Fills the receiver's CUDA tensors in place (non-contiguous ones
  // through a staging buffer) and returns the version. Tensors that differ from the
  // sender's (names, shapes, dtypes, fp8 choice; compared by hash) throw input_error, and
  // the communicator is aborted: the sender's send() fails with system_error once
  // timeout_s has passed.
  std::int64_t receive(named_tensors& weights) override;
  // World size 1 only: send `from` to itself and receive it into `into` (both on the
  // device), through the same buckets, codec and NCCL broadcasts; returns the version.
  std::int64_t loopback(std::int64_t version, const named_tensors& from, named_tensors& into);

  // Bytes that crossed the wire for the last update (all buckets).
  std::int64_t last_wire_bytes() const { return last_wire_bytes_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  nccl_transport_options options_;
  std::int64_t last_wire_bytes_ = 0;
};

}  // namespace troupe
