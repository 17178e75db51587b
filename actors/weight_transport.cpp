#include "actors/weight_transport.hpp"

#include "actors/weight_snapshot.hpp"

#include "actors/gloo_group.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.hpp"
#include "core/hash.hpp"
#include "policies/fp8_codec.hpp"
#include "policies/fp8_weights.hpp"

namespace troupe {
namespace {

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

}  // namespace

// --- in process ------------------------------------------------------------------------

in_process_weight_transport::in_process_weight_transport() : channel_(std::make_shared<channel>()) {}

void in_process_weight_transport::send(std::int64_t version, const named_tensors& weights) {
  weight_update u{version, std::make_shared<const weight_snapshot>(weights)};
  std::lock_guard<std::mutex> lock(channel_->mutex);
  channel_->latest = std::move(u);
  ++channel_->sends;
  channel_->changed.notify_all();
}

std::int64_t in_process_weight_transport::receive(named_tensors& weights) {
  weight_update u;
  {
    std::unique_lock<std::mutex> lock(channel_->mutex);
    channel_->changed.wait(lock, [&] { return channel_->sends > received_sends_; });
    u = channel_->latest;
    received_sends_ = channel_->sends;
  }
  u.weights->load_into(weights);
  return u.version;
}

weight_update in_process_weight_transport::latest() const {
  std::lock_guard<std::mutex> lock(channel_->mutex);
  return channel_->latest;
}

// --- Gloo ------------------------------------------------------------------------------

namespace {

// What one tensor becomes on the wire; sender and receiver compute it from their own
// tensors and the fp8 config, and compare the hash of the whole plan first.
struct wire_item {
  bool fp8 = false;
  fp8_layout layout;     // fp8 only
  std::int64_t bytes = 0;  // fp8: codes + 4 * scales; raw: numel * element size
};

struct wire_plan {
  std::vector<wire_item> items;
  std::int64_t total_bytes = 0;
  std::uint64_t hash = 0;
};

wire_plan plan_for(const named_tensors& weights, const std::optional<fp8_weights_config>& fp8) {
  wire_plan plan;
  std::string key;
  for (const auto& w : weights) {
    const torch::Tensor& t = w.value();
    wire_item item;
    item.fp8 = fp8 && t.is_floating_point() && fp8->selects(w.key(), t.dim());
    if (item.fp8) {
      item.layout = fp8_layout::make(t.size(0), t.size(1), fp8->scaling_mode(), fp8->block_size);
      item.bytes = item.layout.elements() + 4 * item.layout.scales();
    } else {
      item.bytes = t.numel() * static_cast<std::int64_t>(t.element_size());
    }
    key += w.key() + "|" + std::string(c10::toString(t.scalar_type())) + "|" + shape_text(t) + "|" +
           (item.fp8 ? "fp8" : "raw") + ";";
    plan.total_bytes += item.bytes;
    plan.items.push_back(item);
  }
  plan.hash = fnv1a(key);
  return plan;
}

// A run of host bytes that one bucket fills (receiver) or is filled from (sender).
struct segment {
  std::byte* data;
  std::int64_t size;
};

torch::Tensor host_contiguous(const torch::Tensor& t) { return t.detach().to(torch::kCPU).contiguous(); }

std::byte* bytes_of(const torch::Tensor& t) { return static_cast<std::byte*>(t.data_ptr()); }

}  // namespace

struct gloo_weight_transport::impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::chrono::milliseconds timeout{0};
  // Host buffers per tensor of the plan, kept between updates: a fresh allocation of this
  // size is fresh pages, and faulting them in cost more than the FP8 codec itself.
  std::vector<torch::Tensor> codes, scales, staging;

  static torch::Tensor& cached(std::vector<torch::Tensor>& cache, std::size_t i, at::IntArrayRef shape,
                               torch::ScalarType dtype) {
    if (cache.size() <= i) cache.resize(i + 1);
    auto& t = cache[i];
    if (!t.defined() || !t.sizes().equals(shape) || t.scalar_type() != dtype) t = torch::empty(shape, dtype);
    return t;
  }

  void broadcast(torch::Tensor& t) {
    std::vector<at::Tensor> ts{t};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    o.timeout = timeout;
    try {
      group->broadcast(ts, o)->wait(timeout);
    } catch (const std::exception& e) {
      throw system_error(std::string("weight transport (gloo): broadcast failed: ") + e.what());
    }
  }

  // Moves `segments` (the same total size on every rank) from rank 0 to the others in
  // buckets of at most bucket_bytes: rank 0 packs a bucket, every rank broadcasts it, the
  // receivers unpack it.
  void stream(const std::vector<segment>& segments, std::int64_t bucket_bytes, bool sending) {
    std::int64_t total = 0;
    for (const auto& s : segments) total += s.size;
    if (total == 0) return;
    auto bucket = torch::empty({std::min(bucket_bytes, total)}, torch::kUInt8);
    std::size_t seg = 0;
    std::int64_t in_seg = 0;
    for (std::int64_t start = 0; start < total; start += bucket.numel()) {
      const std::int64_t n = std::min(bucket.numel(), total - start);
      auto chunk = bucket.narrow(0, 0, n);
      // Walks the segments from (seg, in_seg), copying n bytes to or from the chunk.
      auto walk = [&](bool into_chunk) {
        std::int64_t done = 0;
        while (done < n) {
          const std::int64_t k = std::min(n - done, segments[seg].size - in_seg);
          std::byte* b = bytes_of(chunk) + done;
          std::byte* s = segments[seg].data + in_seg;
          if (into_chunk)
            std::memcpy(b, s, static_cast<std::size_t>(k));
          else
            std::memcpy(s, b, static_cast<std::size_t>(k));
          done += k;
          in_seg += k;
          if (in_seg == segments[seg].size) {
            ++seg;
            in_seg = 0;
          }
        }
      };
      const std::size_t seg0 = seg;
      const std::int64_t in_seg0 = in_seg;
      if (sending) walk(true);
      broadcast(chunk);
      if (!sending) {
        seg = seg0;
        in_seg = in_seg0;
        walk(false);
      }
    }
  }
};

gloo_transport_options gloo_link_end(const weight_link& link, int rank) {
  gloo_transport_options o;
  o.host = link.host;
  o.port = link.port;
  o.rank = rank;
  o.world_size = 2;
  o.timeout_s = link.timeout_s;
  return o;
}

gloo_weight_transport::gloo_weight_transport(const gloo_transport_options& o) : options_(o) {
  const char* who = "weight transport (gloo)";
  if (o.bucket_bytes < 1) throw input_error(std::string(who) + ": bucket_bytes must be at least 1");
  if (o.fp8) o.fp8->validate("weight transport fp8");

  impl_ = std::make_unique<impl>();
  auto joined = join_gloo_group(o.host, o.port, o.rank, o.world_size, o.timeout_s, who);
  impl_->store = std::move(joined.store);
  impl_->group = std::move(joined.group);
  impl_->timeout = joined.timeout;
}

gloo_weight_transport::~gloo_weight_transport() = default;

void gloo_weight_transport::send(std::int64_t version, const named_tensors& weights) {
  if (options_.rank != 0) throw input_error("weight transport (gloo): only rank 0 sends");
  torch::NoGradGuard g;
  const auto plan = plan_for(weights, options_.fp8);
  auto header = torch::tensor({version, static_cast<std::int64_t>(plan.items.size()),
                               static_cast<std::int64_t>(plan.hash), plan.total_bytes},
                              torch::kInt64);
  impl_->broadcast(header);

  std::vector<torch::Tensor> keep_alive;
  std::vector<segment> segments;
  const int threads = at::get_num_threads();
  std::size_t i = 0;
  for (const auto& w : weights) {
    const std::size_t k = i;
    const auto& item = plan.items[i++];
    if (item.fp8) {
      const auto& l = item.layout;
      auto& codes = impl::cached(impl_->codes, k, {l.rows, l.cols}, torch::kUInt8);
      auto& scales = impl::cached(impl_->scales, k, {l.scale_rows(), l.scale_cols()}, torch::kFloat32);
      const torch::Tensor& x = w.value();
      if (x.is_cpu() && x.is_contiguous() && x.scalar_type() == torch::kFloat32) {
        fp8_encode(x.data_ptr<float>(), l, codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>(), threads);
      } else if (x.is_cpu() && x.is_contiguous() && x.scalar_type() == torch::kBFloat16) {
        fp8_encode_bf16(static_cast<const std::uint16_t*>(x.data_ptr()), l, codes.data_ptr<std::uint8_t>(),
                        scales.data_ptr<float>(), threads);
      } else {  // on a device, or another dtype: encode there, then to the host buffers
        auto e = fp8_encode_tensor(x.detach(), options_.fp8->scaling_mode(), options_.fp8->block_size);
        codes.copy_(e.codes.view(torch::kUInt8));
        scales.copy_(e.scales);
      }
      segments.push_back({bytes_of(codes), l.elements()});
      segments.push_back({bytes_of(scales), 4 * l.scales()});
    } else {
      keep_alive.push_back(host_contiguous(w.value()));
      segments.push_back({bytes_of(keep_alive.back()), item.bytes});
    }
  }
  impl_->stream(segments, options_.bucket_bytes, /*sending=*/true);
  last_wire_bytes_ = plan.total_bytes;
}

std::int64_t gloo_weight_transport::receive(named_tensors& weights) {
  if (options_.rank == 0) throw input_error("weight transport (gloo): rank 0 sends, it does not receive");
  torch::NoGradGuard g;
  const auto plan = plan_for(weights, options_.fp8);
  auto header = torch::zeros({4}, torch::kInt64);
  impl_->broadcast(header);
  const auto* h = header.data_ptr<std::int64_t>();
  if (h[1] != static_cast<std::int64_t>(plan.items.size()) || static_cast<std::uint64_t>(h[2]) != plan.hash ||
      h[3] != plan.total_bytes)
    throw input_error("weight transport (gloo): the sender's " + std::to_string(h[1]) + " tensors (" +
                      std::to_string(h[3]) + " bytes) do not match this receiver's " +
                      std::to_string(plan.items.size()) + " (" + std::to_string(plan.total_bytes) +
                      " bytes): names, shapes, dtypes or the fp8 settings differ");

  // Where each tensor's bytes land: raw CPU contiguous tensors directly, the others in
  // the cached host buffers, decoded or copied afterwards.
  std::vector<segment> segments;
  std::size_t i = 0;
  for (auto& w : weights) {
    const std::size_t k = i;
    const auto& item = plan.items[i++];
    torch::Tensor& t = w.value();
    if (item.fp8) {
      const auto& l = item.layout;
      segments.push_back({bytes_of(impl::cached(impl_->codes, k, {l.rows, l.cols}, torch::kUInt8)), l.elements()});
      segments.push_back(
          {bytes_of(impl::cached(impl_->scales, k, {l.scale_rows(), l.scale_cols()}, torch::kFloat32)),
           4 * l.scales()});
    } else if (t.is_cpu() && t.is_contiguous()) {
      segments.push_back({bytes_of(t), item.bytes});
    } else {
      segments.push_back({bytes_of(impl::cached(impl_->staging, k, t.sizes(), t.scalar_type())), item.bytes});
    }
  }
  impl_->stream(segments, options_.bucket_bytes, /*sending=*/false);

  const int threads = at::get_num_threads();
  i = 0;
  for (auto& w : weights) {
    const std::size_t k = i;
    const auto& item = plan.items[i++];
    torch::Tensor& t = w.value();
    if (item.fp8) {
      const auto& l = item.layout;
      const auto* codes = impl_->codes[k].data_ptr<std::uint8_t>();
      const auto* scales = impl_->scales[k].data_ptr<float>();
      if (t.is_cpu() && t.is_contiguous() && t.scalar_type() == torch::kFloat32) {
        fp8_decode(codes, scales, l, t.data_ptr<float>(), threads);  // straight into the receiver's tensor
      } else if (t.is_cpu() && t.is_contiguous() && t.scalar_type() == torch::kBFloat16) {
        fp8_decode_bf16(codes, scales, l, static_cast<std::uint16_t*>(t.data_ptr()), threads);
      } else {
        fp8_encoded e{impl_->codes[k].view(torch::kFloat8_e4m3fn).to(t.device()), impl_->scales[k].to(t.device()), l};
        t.copy_(fp8_decode_tensor(e, t.scalar_type()));
      }
    } else if (!(t.is_cpu() && t.is_contiguous())) {
      t.copy_(impl_->staging[k]);
    }
  }
  last_wire_bytes_ = plan.total_bytes;
  return h[0];
}

}  // namespace troupe
