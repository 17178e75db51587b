// What the remote weight transports (weights/weight_transport.hpp: Gloo, NCCL) share: the
// wire plan (what each tensor becomes on the wire, and its hash, which sender and
// receiver compare first) and the walk that cuts a list of byte segments into buckets,
// double-buffered. Internal to the transports.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "weights/fp8_codec.hpp"
#include "weights/fp8_weights_config.hpp"

namespace troupe {

using named_tensors = torch::OrderedDict<std::string, torch::Tensor>;

// What one tensor becomes on the wire.
struct wire_item {
  bool fp8 = false;
  fp8_layout layout;       // fp8 only
  std::int64_t bytes = 0;  // fp8: codes + 4 * scales; raw: numel * element size
};

struct wire_plan {
  std::vector<wire_item> items;  // in the order of the weights map
  std::int64_t total_bytes = 0;
  std::uint64_t hash = 0;        // of every name, dtype, shape and raw/fp8 choice
};

// The plan for `weights`: tensors that `fp8` selects (2-D floating ones; with
// `fp8_codec_dtypes_only`, only fp32 and bf16 ones) travel as FP8, the rest raw.
wire_plan plan_for(const named_tensors& weights, const std::optional<fp8_weights_config>& fp8,
                   bool fp8_codec_dtypes_only = false);

// The input_error a receiver throws when the sender's header does not match its plan.
[[noreturn]] void throw_plan_mismatch(const char* who, std::int64_t sender_items, std::int64_t sender_bytes,
                                      const wire_plan& mine);

// A run of bytes that buckets are filled from (sender) or fill (receiver): host memory
// for Gloo, device memory for NCCL. `before` runs (sender) just before its first byte is
// packed, to produce the bytes (FP8 encoding, a copy off a device); `after` runs
// (receiver) just after its last byte landed, to consume them (FP8 decoding, a copy onto
// a device). The hooks of a bucket thus run while the neighbouring bucket is in flight.
struct wire_segment {
  std::byte* data = nullptr;
  std::int64_t size = 0;
  std::function<void()> before;
  std::function<void()> after;
};

// Copies n bytes (host memcpy for Gloo, an asynchronous device copy for NCCL).
using wire_copy = std::function<void(std::byte* to, const std::byte* from, std::int64_t n)>;

// A position in a list of segments that moves forward a bucket at a time. Empty segments
// are passed over, their hooks run all the same.
class wire_cursor {
 public:
  explicit wire_cursor(const std::vector<wire_segment>& segments) : segments_(segments) {}
  // Sender: runs `before` hooks, copies the next n bytes into `bucket`.
  void pack(std::byte* bucket, std::int64_t n, const wire_copy& copy);
  // Receiver: copies `bucket` into the next n bytes, runs the `after` hooks of the
  // segments it completes.
  void unpack(const std::byte* bucket, std::int64_t n, const wire_copy& copy);

 private:
  void walk(std::byte* bucket, std::int64_t n, const wire_copy& copy, bool packing);
  const std::vector<wire_segment>& segments_;
  std::size_t seg_ = 0;
  std::int64_t in_seg_ = 0;
};

std::int64_t total_bytes(const std::vector<wire_segment>& segments);

// One pass of buckets: bucket k is packed from `pack_from` (sender) into buffers[k % B],
// handed to `start` (which begins its broadcast into landing[k % B], or in place when
// there is no landing, and returns how to wait for it), and, once fewer than B newer
// buckets are in flight, waited for and unpacked into `unpack_into` (receiver). A process
// that is both (NCCL with one rank: rank 0 sends to itself) sets both. With B = 2 buffers
// bucket k + 1 is packed, or bucket k - 1 unpacked, while bucket k is on the wire; with
// one, each bucket is packed, sent and unpacked in turn. The bytes on the wire are the
// same either way.
struct wire_buckets {
  std::vector<std::byte*> buffers;  // 1 or 2, of bucket_bytes each
  std::vector<std::byte*> landing;  // empty (in place), or as many as buffers
  std::int64_t bucket_bytes = 0;
  const std::vector<wire_segment>* pack_from = nullptr;
  const std::vector<wire_segment>* unpack_into = nullptr;
  std::function<std::function<void()>(std::byte* from, std::byte* into, std::int64_t n)> start;
  wire_copy copy;
};
void stream_buckets(const wire_buckets& b);

}  // namespace troupe
