// Moving a policy's weights from the trainer to the generators (DESIGN.md "Weight sync
// and FP8"), behind one interface with three transports:
//   in_process_weight_transport  trainer and generators share a process: send() publishes
//                                an immutable weight_snapshot, receive() copies it into
//                                the receiver's tensors;
//   gloo_weight_transport        across processes: PyTorch c10d's ProcessGroupGloo over a
//                                TCPStore rendezvous, rank 0 broadcasting to the others in
//                                buckets of bucket_bytes, optionally FP8-encoded;
//   nccl_weight_transport        CUDA tensors across processes over NCCL, the same way
//                                (weights/nccl_weight_transport.hpp).
// A receiver holds tensors with the sender's names, shapes and dtypes, in the same order
// (its own copy of the model); values arrive in place.
#pragma once

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "weights/weight_sync.hpp"
#include "weights/fp8_weights_config.hpp"

namespace troupe {

using named_tensors = torch::OrderedDict<std::string, torch::Tensor>;

class weight_transport {
 public:
  virtual ~weight_transport() = default;
  // Sender: makes `weights` (as of `version`) what the receivers get next.
  virtual void send(std::int64_t version, const named_tensors& weights) = 0;
  // Receiver: waits for the next send and copies its values into `weights`; returns its
  // version. Throws input_error when the sender's tensors do not fit `weights`.
  virtual std::int64_t receive(named_tensors& weights) = 0;
};

// One process: the trainer's weight_update of weights/weight_sync.hpp behind this
// interface. send() publishes a weight_snapshot (detached clones: the sender may keep
// training). Copies of one in_process_weight_transport share its channel, and each copy
// remembers how far it has received: give each receiver its own copy. receive() loads
// the newest update that copy has not received yet, waiting while there is none; a
// receiver that fell behind skips the updates in between.
class in_process_weight_transport : public weight_transport {
 public:
  in_process_weight_transport();
  void send(std::int64_t version, const named_tensors& weights) override;
  std::int64_t receive(named_tensors& weights) override;
  // The newest update (weights null before the first send), for a generator actor that
  // takes it as a message.
  weight_update latest() const;

 private:
  struct channel {
    mutable std::mutex mutex;
    std::condition_variable changed;
    weight_update latest;    // guarded by mutex
    std::int64_t sends = 0;  // guarded by mutex
  };
  std::shared_ptr<channel> channel_;
  std::int64_t received_sends_ = 0;  // this copy's count of sends it has loaded
};

struct gloo_transport_options {
  std::string host = "127.0.0.1";  // of rank 0's TCPStore; Gloo binds to it as well
  int port = 29500;
  int rank = 0;                    // 0 sends, 1 .. world_size - 1 receive
  int world_size = 2;
  double timeout_s = 300;          // rendezvous and each collective
  std::int64_t bucket_bytes = std::int64_t{64} << 20;
  // Set: tensors that fp8 selects travel as E4M3 codes + block scales and arrive decoded
  // (a quarter of their fp32 bytes); the rest, and everything when unset, travels raw.
  std::optional<fp8_weights_config> fp8;
  // Two bucket buffers: bucket k + 1 is packed (FP8-encoded) on the sender, and bucket
  // k - 1 unpacked (decoded) on the receivers, while bucket k is on the wire. False: one
  // buffer, each bucket in turn (the baseline of weight_transport_bench). The bytes on the
  // wire are the same, and each end may choose for itself.
  bool double_buffer = true;
};

// A c10d Gloo process group of world_size processes (CPU tensors on the wire; tensors on
// another device are copied through the host). The constructor blocks until every rank
// has joined, or throws system_error after timeout_s. Host buffers for FP8 codes and
// scales, and for staging device tensors, are kept from one update to the next. On a
// receiver, CPU contiguous tensors are filled in place (FP8 ones decoded straight into
// them).
// The options of one end of a weight link: rank 0 sends, rank 1 receives.
gloo_transport_options gloo_link_end(const weight_link& link, int rank);
// One end of a weight link over its transport: gloo_weight_transport, or (link.transport
// "nccl") nccl_weight_transport on CUDA device `device`. Blocks until the other end joins.
std::unique_ptr<weight_transport> open_link_end(const weight_link& link, int rank, int device);

class gloo_weight_transport : public weight_transport {
 public:
  explicit gloo_weight_transport(const gloo_transport_options& options);
  ~gloo_weight_transport() override;
  gloo_weight_transport(const gloo_weight_transport&) = delete;
  gloo_weight_transport& operator=(const gloo_weight_transport&) = delete;

  // Rank 0 only. Every receiver must call receive() for it (collective).
  void send(std::int64_t version, const named_tensors& weights) override;
  // Ranks other than 0. A receiver whose tensors differ from the sender's (names, shapes,
  // dtypes, fp8 selection: compared by hash first) throws input_error; the sender's
  // send() then fails with the collective's timeout.
  std::int64_t receive(named_tensors& weights) override;

  // Bytes that crossed the wire for the last send/receive (all buckets).
  std::int64_t last_wire_bytes() const { return last_wire_bytes_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  gloo_transport_options options_;
  std::int64_t last_wire_bytes_ = 0;
};

}  // namespace troupe
