#include "weights/weight_wire.hpp"

#include <algorithm>
#include <deque>
#include <string>

#include "core/error.hpp"
#include "core/hash.hpp"

namespace troupe {
namespace {

bool codec_dtype(torch::ScalarType t) { return t == torch::kFloat32 || t == torch::kBFloat16; }

}  // namespace

wire_plan plan_for(const named_tensors& weights, const std::optional<fp8_weights_config>& fp8,
                   bool fp8_codec_dtypes_only) {
  wire_plan plan;
  std::string key;
  for (const auto& w : weights) {
    const torch::Tensor& t = w.value();
    wire_item item;
    item.fp8 = fp8 && t.is_floating_point() && (!fp8_codec_dtypes_only || codec_dtype(t.scalar_type())) &&
               fp8->selects(w.key(), t.dim());
    if (item.fp8) {
      item.layout = fp8_layout::make(t.size(0), t.size(1), fp8->scaling_mode(), fp8->block_size);
      item.bytes = item.layout.elements() + 4 * item.layout.scales();
    } else {
      item.bytes = t.numel() * static_cast<std::int64_t>(t.element_size());
    }
    key += w.key() + "|" + std::string(c10::toString(t.scalar_type())) + "|" + shape_text(t.sizes().vec()) + "|" +
           (item.fp8 ? "fp8" : "raw") + ";";
    plan.total_bytes += item.bytes;
    plan.items.push_back(item);
  }
  plan.hash = fnv1a(key);
  return plan;
}

void throw_plan_mismatch(const char* who, std::int64_t sender_items, std::int64_t sender_bytes,
                         const wire_plan& mine) {
  throw input_error(std::string(who) + ": the sender's " + std::to_string(sender_items) + " tensors (" +
                    std::to_string(sender_bytes) + " bytes) do not match this receiver's " +
                    std::to_string(mine.items.size()) + " (" + std::to_string(mine.total_bytes) +
                    " bytes): names, shapes, dtypes or the fp8 settings differ");
}

void wire_cursor::walk(std::byte* bucket, std::int64_t n, const wire_copy& copy, bool packing) {
  std::int64_t done = 0;
  for (;;) {
    while (seg_ < segments_.size() && segments_[seg_].size == 0) {
      const auto& s = segments_[seg_++];
      if (packing && s.before) s.before();
      if (!packing && s.after) s.after();
    }
    if (done == n || seg_ == segments_.size()) break;
    const auto& s = segments_[seg_];
    if (packing && in_seg_ == 0 && s.before) s.before();
    const std::int64_t k = std::min(n - done, s.size - in_seg_);
    if (packing) copy(bucket + done, s.data + in_seg_, k);
    else copy(s.data + in_seg_, bucket + done, k);
    done += k;
    in_seg_ += k;
    if (in_seg_ == s.size) {
      if (!packing && s.after) s.after();
      ++seg_;
      in_seg_ = 0;
    }
  }
}

void wire_cursor::pack(std::byte* bucket, std::int64_t n, const wire_copy& copy) { walk(bucket, n, copy, true); }
void wire_cursor::unpack(const std::byte* bucket, std::int64_t n, const wire_copy& copy) {
  walk(const_cast<std::byte*>(bucket), n, copy, false);  // only read from
}

std::int64_t total_bytes(const std::vector<wire_segment>& segments) {
  std::int64_t total = 0;
  for (const auto& s : segments) total += s.size;
  return total;
}

void stream_buckets(const wire_buckets& b) {
  static const std::vector<wire_segment> none;
  const std::int64_t total = total_bytes(b.pack_from ? *b.pack_from : *b.unpack_into);
  const std::size_t buffers = b.buffers.size();
  wire_cursor packer(b.pack_from ? *b.pack_from : none), unpacker(b.unpack_into ? *b.unpack_into : none);
  struct in_flight {
    std::function<void()> wait;
    std::byte* landed;
    std::int64_t n;
  };
  std::deque<in_flight> pending;
  auto finish_oldest = [&] {
    pending.front().wait();
    if (b.unpack_into) unpacker.unpack(pending.front().landed, pending.front().n, b.copy);
    pending.pop_front();
  };
  std::size_t k = 0;
  for (std::int64_t start = 0; start < total; start += b.bucket_bytes, ++k) {
    const std::int64_t n = std::min(b.bucket_bytes, total - start);
    if (pending.size() == buffers) finish_oldest();  // frees buffer k % buffers
    std::byte* bucket = b.buffers[k % buffers];
    std::byte* landed = b.landing.empty() ? bucket : b.landing[k % buffers];
    if (b.pack_from) packer.pack(bucket, n, b.copy);
    pending.push_back({b.start(bucket, landed, n), landed, n});
  }
  while (!pending.empty()) finish_oldest();
  // Hooks of empty segments at the end.
  if (b.pack_from) packer.pack(nullptr, 0, b.copy);
  if (b.unpack_into) unpacker.unpack(nullptr, 0, b.copy);
}

}  // namespace troupe
