#include "algorithms/data_parallel_gloo.hpp"

#include <cstring>
#include <functional>

#include "weights/gloo_group.hpp"
#include "core/error.hpp"

namespace troupe {

void data_parallel_options::validate(const std::string& path) const {
  auto key = [&](const char* k) { return path + "." + k; };
  if (world_size < 1) throw input_error(key("world_size") + " must be at least 1, got " + std::to_string(world_size));
  if (rank < 0 || rank >= world_size)
    throw input_error(key("rank") + " = " + std::to_string(rank) + " is outside [0, " + key("world_size") + " = " +
                      std::to_string(world_size) + ")");
  if (port < 1 || port > 65535) throw input_error(key("port") + " must be in 1..65535, got " + std::to_string(port));
  if (!(timeout_s > 0)) throw input_error(key("timeout_s") + " must be > 0");
  if (bucket_bytes < 1) throw input_error(key("bucket_bytes") + " must be at least 1");
}
namespace {

class gloo_data_parallel_group : public data_parallel_group {
 public:
  gloo_data_parallel_group(const data_parallel_options& o, gloo_group g)
      : options_(o), g_(std::move(g)) {}

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }

  void all_reduce_sum(std::vector<torch::Tensor>& tensors, const std::string& what) override {
    bucketed(tensors, what, "all-reduce", [&](std::vector<at::Tensor>& flat) {
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = g_.timeout;
      return g_.group->allreduce(flat, o);
    });
  }

  void broadcast(std::vector<torch::Tensor>& tensors, const std::string& what) override {
    bucketed(tensors, what, "broadcast", [&](std::vector<at::Tensor>& flat) {
      c10d::BroadcastOptions o;
      o.rootRank = 0;
      o.timeout = g_.timeout;
      return g_.group->broadcast(flat, o);
    });
  }

  std::vector<std::string> all_gather(const std::string& bytes, const std::string& what) override {
    const auto n = static_cast<std::size_t>(options_.world_size);
    // Sizes first, then every rank's bytes padded to the largest.
    std::vector<at::Tensor> size_in{torch::tensor({static_cast<std::int64_t>(bytes.size())}, torch::kInt64)};
    std::vector<std::vector<at::Tensor>> size_out(1);
    for (std::size_t r = 0; r < n; ++r) size_out[0].push_back(torch::zeros({1}, torch::kInt64));
    run(what, "all-gather", [&] {
      c10d::AllgatherOptions o;
      o.timeout = g_.timeout;
      return g_.group->allgather(size_out, size_in, o);
    });
    std::int64_t longest = 1;
    for (const auto& t : size_out[0]) longest = std::max(longest, t.item<std::int64_t>());
    std::vector<at::Tensor> in{torch::zeros({longest}, torch::kUInt8)};
    std::memcpy(in[0].data_ptr(), bytes.data(), bytes.size());
    std::vector<std::vector<at::Tensor>> out(1);
    for (std::size_t r = 0; r < n; ++r) out[0].push_back(torch::zeros({longest}, torch::kUInt8));
    run(what, "all-gather", [&] {
      c10d::AllgatherOptions o;
      o.timeout = g_.timeout;
      return g_.group->allgather(out, in, o);
    });
    std::vector<std::string> result;
    for (std::size_t r = 0; r < n; ++r)
      result.emplace_back(static_cast<const char*>(out[0][r].data_ptr()),
                          static_cast<std::size_t>(size_out[0][r].item<std::int64_t>()));
    return result;
  }

 private:
  using start_fn = std::function<c10::intrusive_ptr<c10d::Work>(std::vector<at::Tensor>&)>;

  // Runs one collective and waits for it; any failure becomes a system_error naming this
  // rank, the collective and `what`, and breaks the group for every later call (its
  // peers are gone or out of step: the run stops at its last checkpoint).
  void run(const std::string& what, const char* op, const std::function<c10::intrusive_ptr<c10d::Work>()>& start) {
    if (!broken_.empty()) throw system_error(broken_);
    auto fail = [&](const std::string& reason) {
      broken_ = "data-parallel rank " + std::to_string(options_.rank) + " of " + std::to_string(options_.world_size) +
                ": the " + op + " of " + what + " failed (another rank was lost, or did not arrive within timeout_s = " +
                format_double(options_.timeout_s) + " s; rendezvous " + options_.host + ":" +
                std::to_string(options_.port) + "): " + reason;
      throw system_error(broken_);
    };
    try {
      start()->wait(g_.timeout);
    } catch (const c10::Error& e) {
      fail(e.what_without_backtrace());  // c10's what() carries a C++ backtrace
    } catch (const std::exception& e) {
      fail(e.what());
    }
  }

  // Packs consecutive tensors of one dtype into flat CPU buckets of up to bucket_bytes,
  // runs `start` on each, and copies the results back. A CPU contiguous tensor that fills
  // a bucket on its own goes as it is.
  void bucketed(std::vector<torch::Tensor>& tensors, const std::string& what, const char* op, const start_fn& start) {
    torch::NoGradGuard no_grad;
    std::size_t i = 0;
    while (i < tensors.size()) {
      const auto dtype = tensors[i].scalar_type();
      const auto elem = static_cast<std::int64_t>(tensors[i].element_size());
      std::size_t j = i;
      std::int64_t bytes = 0;
      while (j < tensors.size() && tensors[j].scalar_type() == dtype &&
             (j == i || bytes + tensors[j].numel() * elem <= options_.bucket_bytes)) {
        bytes += tensors[j].numel() * elem;
        ++j;
      }
      auto& first = tensors[i];
      if (j == i + 1 && first.is_cpu() && first.is_contiguous()) {
        std::vector<at::Tensor> one{first};
        run(what, op, [&] { return start(one); });
      } else {
        std::int64_t total = 0;
        for (std::size_t k = i; k < j; ++k) total += tensors[k].numel();
        if (total == 0) {
          i = j;
          continue;
        }
        std::vector<at::Tensor> flat{torch::empty({total}, torch::TensorOptions().dtype(dtype))};
        std::int64_t at = 0;
        for (std::size_t k = i; k < j; ++k) {
          flat[0].narrow(0, at, tensors[k].numel()).view(tensors[k].sizes()).copy_(tensors[k]);
          at += tensors[k].numel();
        }
        run(what, op, [&] { return start(flat); });
        at = 0;
        for (std::size_t k = i; k < j; ++k) {
          tensors[k].copy_(flat[0].narrow(0, at, tensors[k].numel()).view(tensors[k].sizes()));
          at += tensors[k].numel();
        }
      }
      i = j;
    }
  }

  data_parallel_options options_;
  gloo_group g_;
  std::string broken_;  // the first failure's message; set: every call throws it
};

}  // namespace

std::shared_ptr<data_parallel_group> join_data_parallel_group(const data_parallel_options& options) {
  options.validate("data_parallel");
  auto g = join_gloo_group(options.host, options.port, options.rank, options.world_size, options.timeout_s,
                           "data-parallel trainer group");
  return std::make_shared<gloo_data_parallel_group>(options, std::move(g));
}

}  // namespace troupe
