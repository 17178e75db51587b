// nccl_weight_transport (weights/nccl_weight_transport.hpp). One GPU allows a one-rank
// communicator only, so the GPU tests (suite nccl_weight_transport_cuda, skipped without
// a device; scripts/gpu/run.sh runs them) send rank 0's weights to itself with
// loopback(): the whole path of a receiver, buckets, FP8 device encode and decode, NCCL
// broadcasts, checked against the bytes sent and against the CPU codec's bits.
#include <gtest/gtest.h>

#include <string>

#include "weights/nccl_weight_transport.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "weights/fp8_weights.hpp"
#include "tests/weights/weight_transport_fixture.hpp"

namespace troupe {
namespace {

using testing::bytes_hash;
using testing::transport_weights;

bool has_gpu() { return torch::cuda::is_available() && torch::cuda::device_count() > 0; }

nccl_transport_options one_rank(std::int64_t bucket, bool fp8, bool double_buffer) {
  nccl_transport_options o;
  o.port = reserve_tcp_port();
  o.rank = 0;
  o.world_size = 1;
  o.timeout_s = 60;
  o.bucket_bytes = bucket;
  o.double_buffer = double_buffer;
  if (fp8) o.fp8 = fp8_weights_config{};
  return o;
}

named_tensors on_gpu(const named_tensors& w) {
  named_tensors out;
  for (const auto& t : w) out.insert(t.key(), t.value().to(torch::kCUDA));
  return out;
}

// The receiver of the peer test: zeros, two of them non-contiguous views (staging).
named_tensors zeros_on_gpu(bool strided) {
  auto w = on_gpu(transport_weights(0));
  if (strided) {
    w["model.layers.0.self_attn.q_proj.weight"] = torch::zeros({260, 300}, torch::kCUDA).t();
    w["model.embed_tokens.weight"] = torch::zeros({64, 320}, torch::TensorOptions(torch::kBFloat16).device(torch::kCUDA)).t();
  }
  return w;
}

// What the receiver must hold: the bytes sent, or for the tensors FP8 selects, the CPU
// codec's round trip of them.
std::uint64_t expected_hash(const std::string& name, const torch::Tensor& sent, bool fp8) {
  auto t = sent.cpu();
  if (fp8 && fp8_weights_config{}.selects(name, t.dim())) t = fp8_decode_tensor(fp8_encode_tensor(t), t.scalar_type());
  return bytes_hash(t);
}

// The index one past the devices this process sees: device 0 on a machine without a
// GPU, and a missing one on a machine with GPUs, so the test runs on both.
int missing_device() { return has_gpu() ? static_cast<int>(torch::cuda::device_count()) : 0; }

TEST(nccl_weight_transport, without_nccl_or_a_device_construction_says_why) {
  auto o = one_rank(1 << 20, false, true);
  o.device = missing_device();
  try {
    nccl_weight_transport t(o);
    FAIL() << "constructed without a device";
  } catch (const system_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(nccl_transport_built() ? "has no CUDA device " + std::to_string(o.device) : "built without NCCL"),
              std::string::npos)
        << what;
  }
}

TEST(nccl_weight_transport, bad_options_are_input_errors) {
  if (!nccl_transport_built()) GTEST_SKIP() << "built without NCCL";
  auto o = one_rank(0, false, true);
  EXPECT_THROW(nccl_weight_transport{o}, input_error);
  o.bucket_bytes = 1 << 20;
  o.device = -1;
  EXPECT_THROW(nccl_weight_transport{o}, input_error);
}

// A weight link's end (generator pool and remote generator) over the transport it names.
TEST(nccl_weight_transport, a_weight_link_opens_the_transport_it_names) {
  weight_link link;
  link.port = reserve_tcp_port();
  link.timeout_s = 5;
  link.transport = "carrier-pigeon";
  EXPECT_THROW(open_link_end(link, 0, 0), input_error);
  // On a device this process has not got (a real one would wait for its peer).
  link.transport = "nccl";
  try {
    open_link_end(link, 1, missing_device());
    FAIL() << "an nccl link end without a device";
  } catch (const system_error& e) {
    EXPECT_NE(std::string(e.what()).find("weight transport (nccl)"), std::string::npos) << e.what();
  }
}

TEST(nccl_weight_transport_cuda, loopback_delivers_identical_bytes_in_buckets_single_and_double_buffered) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  for (bool strided : {false, true}) {
    for (bool double_buffer : {false, true}) {
      SCOPED_TRACE(std::string(strided ? "strided " : "") + (double_buffer ? "double" : "single"));
      nccl_weight_transport t(one_rank(100003, false, double_buffer));  // buckets end inside tensors
      for (int version : {7, 8}) {
        const auto sent = on_gpu(transport_weights(version));
        auto got = zeros_on_gpu(strided);
        EXPECT_EQ(t.loopback(version, sent, got), version);
        for (const auto& w : sent) EXPECT_EQ(bytes_hash(got[w.key()]), bytes_hash(w.value())) << w.key();
      }
      EXPECT_EQ(t.last_wire_bytes(),
                320 * 64 * 2 + 300 * 260 * 4 + 300 * 4 + 1000 * 700 * 4 + 64 * 200 * 2 + 64 * 4 + 8);
    }
  }
}

TEST(nccl_weight_transport_cuda, fp8_encoded_on_the_device_arrives_as_the_cpu_codecs_round_trip) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  for (bool double_buffer : {false, true}) {
    SCOPED_TRACE(double_buffer ? "double" : "single");
    nccl_weight_transport t(one_rank(100003, true, double_buffer));
    const auto sent = on_gpu(transport_weights(3));
    auto got = zeros_on_gpu(true);
    EXPECT_EQ(t.loopback(11, sent, got), 11);
    for (const auto& w : sent) EXPECT_EQ(bytes_hash(got[w.key()]), expected_hash(w.key(), w.value(), true)) << w.key();
    // q_proj, down_proj, up_proj as codes + one fp32 scale per 128 x 128 block (as Gloo's).
    const std::int64_t raw = 320 * 64 * 2 + 300 * 260 * 4 + 300 * 4 + 1000 * 700 * 4 + 64 * 200 * 2 + 64 * 4 + 8;
    EXPECT_EQ(t.last_wire_bytes(), raw - 300 * 260 * 3 - 1000 * 700 * 3 - 64 * 200 + 4 * (3 * 3 + 8 * 6 + 1 * 2));
  }
}

TEST(nccl_weight_transport_cuda, tensors_that_differ_or_are_not_on_the_device_are_input_errors) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  nccl_weight_transport t(one_rank(1 << 20, false, true));
  const auto sent = on_gpu(transport_weights(1));
  auto misfit = zeros_on_gpu(false);
  misfit["model.norm.weight"] = torch::zeros({65}, torch::kCUDA);
  EXPECT_THROW(t.loopback(1, sent, misfit), input_error);
  auto on_cpu = transport_weights(0);
  EXPECT_THROW(t.loopback(1, sent, on_cpu), input_error);
  EXPECT_THROW(t.receive(misfit), input_error);  // rank 0 does not receive
  auto fine = zeros_on_gpu(false);
  EXPECT_EQ(t.loopback(2, sent, fine), 2);  // the transport is still usable
}

TEST(nccl_weight_transport_cuda, a_rank_that_never_joins_is_a_timeout_not_a_hang) {
  if (!has_gpu()) GTEST_SKIP() << "no CUDA device";
  auto o = one_rank(1 << 20, false, true);
  o.world_size = 2;  // rank 1 never comes
  o.timeout_s = 3;
  try {
    nccl_weight_transport t(o);
    FAIL() << "joined without rank 1";
  } catch (const system_error& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace troupe
