// nccl_weight_transport.hpp with NCCL (TROUPE_HAVE_NCCL). The bucket walk and the wire
// plan are the Gloo transport's (weights/weight_wire.hpp); here they run on the device:
// copies are cudaMemcpyAsync on the `work` stream, broadcasts ncclBroadcast on the `comm`
// stream, and events order the two (below, stream()). The host only queues, then polls.
#include "weights/nccl_weight_transport.hpp"

#include <c10/core/impl/VirtualGuardImpl.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <array>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "weights/tcp_rendezvous.hpp"
#include "weights/weight_wire.hpp"
#include "core/error.hpp"
#include "weights/fp8_codec_cuda.hpp"

namespace troupe {
namespace {

const std::string who = "weight transport (nccl)";
using clock_type = std::chrono::steady_clock;

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw system_error(who + ": " + what + ": " + cudaGetErrorString(e));
}

// Makes `device` current for the calls of one update, and restores the caller's.
struct device_guard {
  int previous = 0;
  explicit device_guard(int device) {
    check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~device_guard() { cudaSetDevice(previous); }
  device_guard(const device_guard&) = delete;
  device_guard& operator=(const device_guard&) = delete;
};

std::byte* bytes_of(const torch::Tensor& t) { return static_cast<std::byte*>(t.data_ptr()); }

std::string seconds_text(std::chrono::milliseconds t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", static_cast<double>(t.count()) / 1000.0);
  return buf;
}

}  // namespace

bool nccl_transport_built() { return true; }

struct nccl_weight_transport::impl {
  int device = 0;
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  ncclComm_t comm = nullptr;
  std::string broken;  // why the communicator was aborted; empty while it is usable
  cudaStream_t work = nullptr, comm_stream = nullptr;
  cudaEvent_t torch_ready = nullptr, work_done = nullptr, comm_done = nullptr;
  std::array<cudaEvent_t, 2> ready{}, sent{};  // per bucket buffer
  std::int64_t* header = nullptr;              // pinned host [4]: version, items, hash, bytes
  torch::Tensor header_device;                 // int64 [4] on the device
  // Device buffers kept from one update to the next: per tensor, FP8 codes and scales and
  // contiguous staging for non-contiguous tensors (a set for each end: loopback is both),
  // and the bucket buffers (and, for loopback, the buffers the buckets land in).
  struct per_tensor {
    std::vector<torch::Tensor> codes, scales, staging;
  };
  per_tensor sending, receiving;
  std::vector<torch::Tensor> buckets, landing;

  ~impl() {
    if (comm) {
      if (broken.empty()) ncclCommDestroy(comm);  // every update ended synchronized
      else ncclCommAbort(comm);
    }
    for (auto e : {torch_ready, work_done, comm_done, ready[0], ready[1], sent[0], sent[1]})
      if (e) cudaEventDestroy(e);
    if (work) cudaStreamDestroy(work);
    if (comm_stream) cudaStreamDestroy(comm_stream);
    if (header) cudaFreeHost(header);
  }

  // Aborts the communicator (NCCL's way out of a collective that will not finish) and
  // throws; the transport is unusable afterwards.
  [[noreturn]] void fail(const std::string& what) {
    if (broken.empty() && comm) ncclCommAbort(comm);
    comm = nullptr;
    broken = what;
    throw system_error(who + ": " + what);
  }

  void check_usable() const {
    if (!broken.empty()) throw system_error(who + ": the communicator was aborted after an earlier error: " + broken);
  }

  // A call in non-blocking mode may return ncclInProgress: poll until it has been issued.
  void nccl(ncclResult_t r, const char* what, clock_type::time_point deadline) {
    while (r == ncclInProgress) {
      if (clock_type::now() > deadline) fail(std::string(what) + " timed out after " + seconds_text(timeout));
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      ncclCommGetAsyncError(comm, &r);
    }
    if (r != ncclSuccess)
      fail(std::string(what) + ": " + ncclGetErrorString(r) + " (" + (comm ? ncclGetLastError(comm) : "") + ")");
  }

  // Waits on the host for `event`, watching NCCL's errors and the deadline.
  void wait_for(cudaEvent_t event, const char* what, clock_type::time_point deadline) {
    for (;;) {
      const cudaError_t q = cudaEventQuery(event);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) fail(std::string(what) + ": " + cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm, &async);
      if (async != ncclSuccess && async != ncclInProgress)
        fail(std::string(what) + ": " + ncclGetErrorString(async) + " (" + ncclGetLastError(comm) + ")");
      if (clock_type::now() > deadline)
        fail(std::string(what) + " did not finish within " + seconds_text(timeout) +
             " (does every receiver call receive() with the same weights?)");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // Both streams start after what LibTorch's current stream has queued (the weights may
  // still be being written, or read, by it).
  void after_torch() {
    void* s = c10::impl::VirtualGuardImpl(c10::DeviceType::CUDA)
                  .getStream(torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(device)))
                  .native_handle();
    check_cuda(cudaEventRecord(torch_ready, static_cast<cudaStream_t>(s)), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(work, torch_ready, 0), "cudaStreamWaitEvent");
    check_cuda(cudaStreamWaitEvent(comm_stream, torch_ready, 0), "cudaStreamWaitEvent");
  }

  void finish(clock_type::time_point deadline) {
    check_cuda(cudaEventRecord(work_done, work), "cudaEventRecord");
    check_cuda(cudaEventRecord(comm_done, comm_stream), "cudaEventRecord");
    wait_for(comm_done, "the broadcasts", deadline);
    wait_for(work_done, "packing and unpacking", deadline);
  }

  // The header from rank 0 to all; on return `header` holds rank 0's.
  void broadcast_header(clock_type::time_point deadline) {
    auto* d = header_device.data_ptr<std::int64_t>();
    check_cuda(cudaMemcpyAsync(d, header, 32, cudaMemcpyHostToDevice, comm_stream), "cudaMemcpyAsync");
    nccl(ncclBroadcast(d, d, 4, ncclInt64, 0, comm, comm_stream), "ncclBroadcast (header)", deadline);
    check_cuda(cudaMemcpyAsync(header, d, 32, cudaMemcpyDeviceToHost, comm_stream), "cudaMemcpyAsync");
    check_cuda(cudaEventRecord(comm_done, comm_stream), "cudaEventRecord");
    wait_for(comm_done, "the header broadcast", deadline);
  }

  torch::Tensor& cached(std::vector<torch::Tensor>& cache, std::size_t i, at::IntArrayRef shape,
                        torch::ScalarType dtype) {
    if (cache.size() <= i) cache.resize(i + 1);
    auto& t = cache[i];
    if (!t.defined() || !t.sizes().equals(shape) || t.scalar_type() != dtype)
      t = torch::empty(shape, torch::TensorOptions().dtype(dtype).device(torch::kCUDA, device));
    return t;
  }

  // Each tensor's bytes on the sender, in plan order: contiguous ones as they are (others
  // through staging, copied on LibTorch's stream before after_torch()), FP8 ones encoded on
  // the work stream just before their first byte is packed.
  std::vector<wire_segment> sender_segments(const named_tensors& weights, const wire_plan& plan) {
    std::vector<wire_segment> segments;
    std::size_t i = 0;
    for (const auto& w : weights) {
      const std::size_t k = i;
      const auto& item = plan.items[i++];
      torch::Tensor x = w.value().detach();
      if (!x.is_contiguous()) x = cached(sending.staging, k, x.sizes(), x.scalar_type()).copy_(x);
      if (item.fp8) {
        const auto l = item.layout;
        auto c = cached(sending.codes, k, {l.rows, l.cols}, torch::kUInt8);
        auto s = cached(sending.scales, k, {l.scale_rows(), l.scale_cols()}, torch::kFloat32);
        auto encode = [this, x, c, s, l] {
          auto* cp = c.data_ptr<std::uint8_t>();
          auto* sp = s.data_ptr<float>();
          if (x.scalar_type() == torch::kFloat32) fp8_encode_cuda(x.data_ptr<float>(), l, cp, sp, work);
          else fp8_encode_bf16_cuda(static_cast<const std::uint16_t*>(x.data_ptr()), l, cp, sp, work);
        };
        segments.push_back({bytes_of(c), l.elements(), encode, {}});
        segments.push_back({bytes_of(s), 4 * l.scales(), {}, {}});
      } else {
        segments.push_back({bytes_of(x), item.bytes, {}, {}});
      }
    }
    return segments;
  }

  // Where each tensor's bytes land on a receiver: in the tensor itself when contiguous
  // (FP8 ones decoded straight into it on the work stream once their last byte is in),
  // else in staging, copied into the tensor by copy_back() at the end.
  std::vector<wire_segment> receiver_segments(named_tensors& weights, const wire_plan& plan) {
    std::vector<wire_segment> segments;
    std::size_t i = 0;
    for (auto& w : weights) {
      const std::size_t k = i;
      const auto& item = plan.items[i++];
      torch::Tensor t = w.value();
      if (!t.is_contiguous()) t = cached(receiving.staging, k, t.sizes(), t.scalar_type());
      if (item.fp8) {
        const auto l = item.layout;
        auto c = cached(receiving.codes, k, {l.rows, l.cols}, torch::kUInt8);
        auto s = cached(receiving.scales, k, {l.scale_rows(), l.scale_cols()}, torch::kFloat32);
        auto decode = [this, t, c, s, l] {
          const auto* cp = c.data_ptr<std::uint8_t>();
          const auto* sp = s.data_ptr<float>();
          if (t.scalar_type() == torch::kFloat32) fp8_decode_cuda(cp, sp, l, t.data_ptr<float>(), work);
          else fp8_decode_bf16_cuda(cp, sp, l, static_cast<std::uint16_t*>(t.data_ptr()), work);
        };
        segments.push_back({bytes_of(c), l.elements(), {}, {}});
        segments.push_back({bytes_of(s), 4 * l.scales(), {}, decode});
      } else {
        segments.push_back({bytes_of(t), item.bytes, {}, {}});
      }
    }
    return segments;
  }

  // After finish(): non-contiguous receiver tensors from their staging, on LibTorch's
  // stream (ordered before anything the caller queues next).
  void copy_back(named_tensors& weights) {
    std::size_t k = 0;
    for (auto& w : weights) {
      if (!w.value().is_contiguous()) w.value().copy_(receiving.staging[k]);
      ++k;
    }
  }

  // The buckets (stream_buckets). Bucket buffer b is guarded by two events: ready[b],
  // recorded on `work` when the bucket was packed into it (sender) or the previous bucket
  // unpacked from it (receiver), which the broadcast on `comm` waits for; and sent[b],
  // recorded on `comm` after the broadcast, which `work` waits for before packing into b
  // again or unpacking from it. With two buffers, one bucket's copies and codec kernels
  // overlap the neighbouring bucket's broadcast.
  void stream(const std::vector<wire_segment>* from, const std::vector<wire_segment>* into,
              std::int64_t bucket_bytes, bool double_buffer, clock_type::time_point deadline) {
    const std::int64_t size = std::min(bucket_bytes, total_bytes(from ? *from : *into));
    if (size == 0) return;
    const std::size_t n = double_buffer ? 2 : 1;
    const auto opts = torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA, device);
    auto buffers = [&](std::vector<torch::Tensor>& cache, std::vector<std::byte*>& out) {
      cache.resize(n);
      for (auto& t : cache) {
        if (!t.defined() || t.numel() < size) t = torch::empty({size}, opts);
        out.push_back(bytes_of(t));
      }
    };
    wire_buckets b;
    b.bucket_bytes = size;
    b.pack_from = from;
    b.unpack_into = into;
    buffers(buckets, b.buffers);
    if (from && into) buffers(landing, b.landing);  // loopback: land in buffers of their own
    const std::vector<std::byte*> sources = b.buffers;
    b.copy = [this](std::byte* to, const std::byte* source, std::int64_t bytes) {
      check_cuda(cudaMemcpyAsync(to, source, static_cast<std::size_t>(bytes), cudaMemcpyDeviceToDevice, work),
                 "cudaMemcpyAsync");
    };
    b.start = [this, sources, deadline](std::byte* source, std::byte* target, std::int64_t bytes) {
      const std::size_t i = source == sources[0] ? 0 : 1;
      check_cuda(cudaEventRecord(ready[i], work), "cudaEventRecord");
      check_cuda(cudaStreamWaitEvent(comm_stream, ready[i], 0), "cudaStreamWaitEvent");
      nccl(ncclBroadcast(source, target, static_cast<std::size_t>(bytes), ncclUint8, 0, comm, comm_stream),
           "ncclBroadcast", deadline);
      check_cuda(cudaEventRecord(sent[i], comm_stream), "cudaEventRecord");
      return std::function<void()>([this, i] {
        check_cuda(cudaStreamWaitEvent(work, sent[i], 0), "cudaStreamWaitEvent");
      });
    };
    stream_buckets(b);
  }
};

nccl_weight_transport::nccl_weight_transport(const nccl_transport_options& o) : options_(o) {
  if (o.bucket_bytes < 1) throw input_error(who + ": bucket_bytes must be at least 1");
  if (o.device < 0) throw input_error(who + ": device must be a CUDA device index >= 0");
  if (o.fp8) o.fp8->validate("weight transport fp8");
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || o.device >= devices)
    throw system_error(who + ": rank " + std::to_string(o.rank) + " has no CUDA device " + std::to_string(o.device) +
                       " (this process sees " + std::to_string(devices) + ")");

  impl_ = std::make_unique<impl>();
  auto& m = *impl_;
  m.device = o.device;
  auto r = join_tcp_store(o.host, o.port, o.rank, o.world_size, o.timeout_s, who);
  m.store = std::move(r.store);
  m.timeout = r.timeout;
  const auto deadline = clock_type::now() + m.timeout;

  // Rank 0 makes the id and publishes it; the others wait for it (the store's timeout).
  ncclUniqueId id{};
  const std::string key = "troupe/nccl_weight_transport/unique_id";
  try {
    if (o.rank == 0) {
      if (ncclGetUniqueId(&id) != ncclSuccess) throw system_error("ncclGetUniqueId failed");
      const auto* p = reinterpret_cast<const std::uint8_t*>(&id);
      m.store->set(key, std::vector<std::uint8_t>(p, p + sizeof id));
    } else {
      const auto v = m.store->get(key);
      if (v.size() != sizeof id) throw system_error("the published id has " + std::to_string(v.size()) + " bytes");
      std::memcpy(&id, v.data(), sizeof id);
    }
  } catch (const std::exception& e) {
    throw system_error(who + ": rank " + std::to_string(o.rank) + " could not get NCCL's unique id through " + o.host +
                       ":" + std::to_string(o.port) + ": " + e.what());
  }

  device_guard g(o.device);
  check_cuda(cudaStreamCreateWithFlags(&m.work, cudaStreamNonBlocking), "cudaStreamCreate");
  check_cuda(cudaStreamCreateWithFlags(&m.comm_stream, cudaStreamNonBlocking), "cudaStreamCreate");
  for (auto* e : {&m.torch_ready, &m.work_done, &m.comm_done, &m.ready[0], &m.ready[1], &m.sent[0], &m.sent[1]})
    check_cuda(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "cudaEventCreate");
  check_cuda(cudaMallocHost(reinterpret_cast<void**>(&m.header), 32), "cudaMallocHost");
  m.header_device = torch::zeros({4}, torch::TensorOptions().dtype(torch::kInt64).device(torch::kCUDA, o.device));

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // so that a rank that never comes is a timeout, not a hang
  ncclResult_t init = ncclCommInitRankConfig(&m.comm, o.world_size, id, o.rank, &config);
  if (init != ncclSuccess && init != ncclInProgress)
    throw system_error(who + ": ncclCommInitRankConfig failed on rank " + std::to_string(o.rank) + ": " +
                       ncclGetErrorString(init));
  m.nccl(init, "ncclCommInitRankConfig (waiting for every rank)", deadline);
}

nccl_weight_transport::~nccl_weight_transport() {
  int previous = 0;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && cudaSetDevice(options_.device) == cudaSuccess;
  impl_.reset();
  if (switched) cudaSetDevice(previous);
}

namespace {

void check_on_device(const named_tensors& weights, int device) {
  for (const auto& w : weights)
    if (!w.value().is_cuda() || w.value().get_device() != device)
      throw input_error(who + ": carries CUDA tensors on cuda:" + std::to_string(device) + "; '" + w.key() +
                        "' is on " + w.value().device().str());
}

}  // namespace

void nccl_weight_transport::send(std::int64_t version, const named_tensors& weights) {
  if (options_.rank != 0) throw input_error(who + ": only rank 0 sends");
  impl_->check_usable();
  check_on_device(weights, options_.device);
  torch::NoGradGuard ng;
  device_guard g(options_.device);
  const auto deadline = clock_type::now() + impl_->timeout;
  const auto plan = plan_for(weights, options_.fp8, /*fp8_codec_dtypes_only=*/true);
  const auto segments = impl_->sender_segments(weights, plan);  // before after_torch(): staging copies
  impl_->after_torch();
  impl_->header[0] = version;
  impl_->header[1] = static_cast<std::int64_t>(plan.items.size());
  impl_->header[2] = static_cast<std::int64_t>(plan.hash);
  impl_->header[3] = plan.total_bytes;
  impl_->broadcast_header(deadline);
  impl_->stream(&segments, nullptr, options_.bucket_bytes, options_.double_buffer, deadline);
  impl_->finish(deadline);
  last_wire_bytes_ = plan.total_bytes;
}

std::int64_t nccl_weight_transport::receive(named_tensors& weights) {
  if (options_.rank == 0) throw input_error(who + ": rank 0 sends, it does not receive");
  impl_->check_usable();
  check_on_device(weights, options_.device);
  torch::NoGradGuard ng;
  device_guard g(options_.device);
  const auto deadline = clock_type::now() + impl_->timeout;
  const auto plan = plan_for(weights, options_.fp8, /*fp8_codec_dtypes_only=*/true);
  impl_->after_torch();
  impl_->broadcast_header(deadline);
  const std::int64_t* h = impl_->header;
  if (h[1] != static_cast<std::int64_t>(plan.items.size()) || static_cast<std::uint64_t>(h[2]) != plan.hash ||
      h[3] != plan.total_bytes) {
    // The sender goes on to broadcast buckets this rank will not take: abort, so that
    // neither end is left inside a collective.
    try {
      throw_plan_mismatch("weight transport (nccl)", h[1], h[3], plan);
    } catch (const input_error& e) {
      ncclCommAbort(impl_->comm);
      impl_->comm = nullptr;
      impl_->broken = e.what();
      throw;
    }
  }
  const std::int64_t version = h[0];
  const auto segments = impl_->receiver_segments(weights, plan);
  impl_->stream(nullptr, &segments, options_.bucket_bytes, options_.double_buffer, deadline);
  impl_->finish(deadline);
  impl_->copy_back(weights);
  last_wire_bytes_ = plan.total_bytes;
  return version;
}

std::int64_t nccl_weight_transport::loopback(std::int64_t version, const named_tensors& from, named_tensors& into) {
  if (options_.world_size != 1) throw input_error(who + ": loopback() needs world_size 1");
  impl_->check_usable();
  check_on_device(from, options_.device);
  check_on_device(into, options_.device);
  torch::NoGradGuard ng;
  device_guard g(options_.device);
  const auto deadline = clock_type::now() + impl_->timeout;
  const auto plan = plan_for(from, options_.fp8, /*fp8_codec_dtypes_only=*/true);
  const auto mine = plan_for(into, options_.fp8, /*fp8_codec_dtypes_only=*/true);
  if (mine.hash != plan.hash || mine.total_bytes != plan.total_bytes)
    throw_plan_mismatch("weight transport (nccl)", static_cast<std::int64_t>(plan.items.size()), plan.total_bytes,
                        mine);
  const auto out = impl_->sender_segments(from, plan);
  const auto in = impl_->receiver_segments(into, mine);
  impl_->after_torch();
  impl_->header[0] = version;
  impl_->header[1] = static_cast<std::int64_t>(plan.items.size());
  impl_->header[2] = static_cast<std::int64_t>(plan.hash);
  impl_->header[3] = plan.total_bytes;
  impl_->broadcast_header(deadline);
  impl_->stream(&out, &in, options_.bucket_bytes, options_.double_buffer, deadline);
  impl_->finish(deadline);
  impl_->copy_back(into);
  last_wire_bytes_ = plan.total_bytes;
  return impl_->header[0];
}

}  // namespace troupe
