#include "weights/weight_transport.hpp"

#include "weights/weight_snapshot.hpp"

#include "weights/gloo_group.hpp"
#include "weights/nccl_weight_transport.hpp"
#include "weights/weight_wire.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.hpp"
#include "weights/fp8_codec.hpp"
#include "weights/fp8_weights.hpp"

namespace troupe {
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

torch::Tensor& cached(std::vector<torch::Tensor>& cache, std::size_t i, at::IntArrayRef shape,
                      torch::ScalarType dtype) {
  if (cache.size() <= i) cache.resize(i + 1);
  auto& t = cache[i];
  if (!t.defined() || !t.sizes().equals(shape) || t.scalar_type() != dtype) t = torch::empty(shape, dtype);
  return t;
}

std::byte* bytes_of(const torch::Tensor& t) { return static_cast<std::byte*>(t.data_ptr()); }

bool cpu_contiguous(const torch::Tensor& t) { return t.is_cpu() && t.is_contiguous(); }

}  // namespace

struct gloo_weight_transport::impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;
  std::chrono::milliseconds timeout{0};
  // Host buffers per tensor of the plan, and the bucket buffers, kept between updates: a
  // fresh allocation of this size is fresh pages, and faulting them in cost more than
  // the FP8 codec itself.
  std::vector<torch::Tensor> codes, scales, staging, buckets;

  c10::intrusive_ptr<c10d::Work> start_broadcast(torch::Tensor& t) {
    std::vector<at::Tensor> ts{t};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    o.timeout = timeout;
    try {
      return group->broadcast(ts, o);
    } catch (const std::exception& e) {
      throw system_error(std::string("weight transport (gloo): broadcast failed: ") + e.what());
    }
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work) {
    try {
      work->wait(timeout);
    } catch (const std::exception& e) {
      throw system_error(std::string("weight transport (gloo): broadcast failed: ") + e.what());
    }
  }

  void broadcast(torch::Tensor& t) { wait(start_broadcast(t)); }

  // Moves `segments` (the same total size on every rank) from rank 0 to the others in
  // buckets of at most bucket_bytes (stream_buckets): each bucket's broadcast runs on
  // Gloo's threads while this one packs the next or unpacks the previous.
  void stream(const std::vector<wire_segment>& segments, std::int64_t bucket_bytes, bool double_buffer,
              bool sending) {
    const std::int64_t size = std::min(bucket_bytes, total_bytes(segments));
    if (size == 0) return;
    wire_buckets b;
    b.bucket_bytes = size;
    (sending ? b.pack_from : b.unpack_into) = &segments;
    buckets.resize(double_buffer ? 2 : 1);
    for (auto& t : buckets) {
      if (!t.defined() || t.numel() < size) t = torch::empty({size}, torch::kUInt8);
      b.buffers.push_back(bytes_of(t));
    }
    b.start = [this](std::byte* bucket, std::byte*, std::int64_t n) -> std::function<void()> {
      auto t = torch::from_blob(bucket, {n}, torch::kUInt8);
      auto work = start_broadcast(t);
      return [this, work] { wait(work); };
    };
    b.copy = [](std::byte* to, const std::byte* from, std::int64_t n) {
      std::memcpy(to, from, static_cast<std::size_t>(n));
    };
    stream_buckets(b);
  }
};

namespace {

// What both transports' options take from a link: rank 0 sends, rank 1 receives.
template <class Options>
Options link_options(const weight_link& link, int rank) {
  Options o;
  o.host = link.host;
  o.port = link.port;
  o.rank = rank;
  o.world_size = 2;
  o.timeout_s = link.timeout_s;
  o.fp8 = link.fp8;
  return o;
}

}  // namespace

gloo_transport_options gloo_link_end(const weight_link& link, int rank) {
  return link_options<gloo_transport_options>(link, rank);
}

std::unique_ptr<weight_transport> open_link_end(const weight_link& link, int rank, int device) {
  if (link.transport == "gloo") return std::make_unique<gloo_weight_transport>(gloo_link_end(link, rank));
  if (link.transport != "nccl")
    throw input_error("weight link: transport must be gloo or nccl, got '" + link.transport + "'");
  auto o = link_options<nccl_transport_options>(link, rank);
  o.device = device;
  return std::make_unique<nccl_weight_transport>(o);
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

  // Each tensor's bytes: CPU contiguous raw ones as they are; FP8 ones encoded, and the
  // others copied to the host, just before their first byte is packed.
  std::vector<wire_segment> segments;
  const int threads = at::get_num_threads();
  const auto scaling = options_.fp8 ? options_.fp8->scaling_mode() : fp8_scaling::block;
  const std::int64_t block = options_.fp8 ? options_.fp8->block_size : 128;
  std::size_t i = 0;
  for (const auto& w : weights) {
    const std::size_t k = i;
    const auto& item = plan.items[i++];
    const torch::Tensor x = w.value().detach();
    if (item.fp8) {
      const auto l = item.layout;
      auto codes = cached(impl_->codes, k, {l.rows, l.cols}, torch::kUInt8);
      auto scales = cached(impl_->scales, k, {l.scale_rows(), l.scale_cols()}, torch::kFloat32);
      auto encode = [=]() mutable {
        if (cpu_contiguous(x) && x.scalar_type() == torch::kFloat32) {
          fp8_encode(x.data_ptr<float>(), l, codes.data_ptr<std::uint8_t>(), scales.data_ptr<float>(), threads);
        } else if (cpu_contiguous(x) && x.scalar_type() == torch::kBFloat16) {
          fp8_encode_bf16(static_cast<const std::uint16_t*>(x.data_ptr()), l, codes.data_ptr<std::uint8_t>(),
                          scales.data_ptr<float>(), threads);
        } else {  // on a device, or another dtype: encode there, then to the host buffers
          auto e = fp8_encode_tensor(x, scaling, block);
          codes.copy_(e.codes.view(torch::kUInt8));
          scales.copy_(e.scales);
        }
      };
      segments.push_back({bytes_of(codes), l.elements(), encode, {}});
      segments.push_back({bytes_of(scales), 4 * l.scales(), {}, {}});
    } else if (cpu_contiguous(x)) {
      segments.push_back({bytes_of(x), item.bytes, {}, {}});
    } else {
      auto staging = cached(impl_->staging, k, x.sizes(), x.scalar_type());
      segments.push_back({bytes_of(staging), item.bytes, [=]() mutable { staging.copy_(x); }, {}});
    }
  }
  impl_->stream(segments, options_.bucket_bytes, options_.double_buffer, /*sending=*/true);
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
    throw_plan_mismatch("weight transport (gloo)", h[1], h[3], plan);

  // Where each tensor's bytes land: raw CPU contiguous tensors directly, the others in
  // the cached host buffers, decoded or copied as soon as their last byte is in.
  std::vector<wire_segment> segments;
  const int threads = at::get_num_threads();
  std::size_t i = 0;
  for (auto& w : weights) {
    const std::size_t k = i;
    const auto& item = plan.items[i++];
    torch::Tensor t = w.value();
    if (item.fp8) {
      const auto l = item.layout;
      auto codes = cached(impl_->codes, k, {l.rows, l.cols}, torch::kUInt8);
      auto scales = cached(impl_->scales, k, {l.scale_rows(), l.scale_cols()}, torch::kFloat32);
      auto decode = [=]() mutable {
        const auto* c = codes.data_ptr<std::uint8_t>();
        const auto* s = scales.data_ptr<float>();
        if (cpu_contiguous(t) && t.scalar_type() == torch::kFloat32) {
          fp8_decode(c, s, l, t.data_ptr<float>(), threads);  // straight into the receiver's tensor
        } else if (cpu_contiguous(t) && t.scalar_type() == torch::kBFloat16) {
          fp8_decode_bf16(c, s, l, static_cast<std::uint16_t*>(t.data_ptr()), threads);
        } else {
          fp8_encoded e{codes.view(torch::kFloat8_e4m3fn).to(t.device()), scales.to(t.device()), l};
          t.copy_(fp8_decode_tensor(e, t.scalar_type()));
        }
      };
      segments.push_back({bytes_of(codes), l.elements(), {}, {}});
      segments.push_back({bytes_of(scales), 4 * l.scales(), {}, decode});
    } else if (cpu_contiguous(t)) {
      segments.push_back({bytes_of(t), item.bytes, {}, {}});
    } else {
      auto staging = cached(impl_->staging, k, t.sizes(), t.scalar_type());
      segments.push_back({bytes_of(staging), item.bytes, {}, [=]() mutable { t.copy_(staging); }});
    }
  }
  impl_->stream(segments, options_.bucket_bytes, options_.double_buffer, /*sending=*/false);
  last_wire_bytes_ = plan.total_bytes;
  return h[0];
}

}  // namespace troupe
