// Weight transports (weights/weight_transport.hpp): in process, and c10d Gloo across two
// processes (this test is rank 0; weight_transport_peer is rank 1), raw and FP8.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "core/net.hpp"
#include "weights/fp8_weights.hpp"
#include "weights/weight_wire.hpp"
#include "tests/weights/weight_transport_fixture.hpp"
#include "tests/support/temp_dir.hpp"

extern char** environ;

namespace troupe {
namespace {

using testing::bytes_hash;
using testing::transport_weights;

TEST(in_process_weight_transport, a_receiver_gets_the_newest_send_as_identical_bytes) {
  in_process_weight_transport sender;
  auto receiver = sender;  // each receiver holds its own copy
  auto weights = transport_weights(5);
  sender.send(1, transport_weights(4));
  sender.send(2, weights);
  weights["model.norm.weight"].add_(1.0);  // the sender keeps training: the sent copy stays
  auto got = transport_weights(0);
  EXPECT_EQ(receiver.receive(got), 2);
  const auto sent = transport_weights(5);
  for (const auto& w : sent) EXPECT_EQ(bytes_hash(got[w.key()]), bytes_hash(w.value())) << w.key();

  std::thread later([&] { sender.send(3, transport_weights(6)); });
  EXPECT_EQ(receiver.receive(got), 3);  // waits for it
  later.join();
  EXPECT_EQ(bytes_hash(got["model.layers.0.mlp.down_proj.weight"]),
            bytes_hash(transport_weights(6)["model.layers.0.mlp.down_proj.weight"]));
}

TEST(in_process_weight_transport, a_receiver_of_another_shape_is_refused) {
  in_process_weight_transport sender;
  auto receiver = sender;
  sender.send(1, transport_weights(1));
  auto got = transport_weights(0);
  got["model.norm.weight"] = torch::zeros({65});
  try {
    receiver.receive(got);
    FAIL() << "did not throw";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.norm.weight"), std::string::npos) << e.what();
  }
}

// stream_buckets with a wire that records each bucket: the same buckets with one or two
// buffers, `before` hooks before the first byte is packed and `after` hooks after the last
// is unpacked (empty segments included), and every byte back where it belongs.
TEST(wire_buckets, one_or_two_buffers_move_the_same_buckets_and_run_the_hooks_in_order) {
  for (int buffers : {1, 2}) {
    SCOPED_TRACE(buffers);
    std::vector<std::string> source = {"abcdefg", "", "hij", "klmnopqrstu", ""};
    std::vector<std::string> target(source.size());
    std::vector<std::string> log, wire;
    std::vector<wire_segment> out, in;
    for (std::size_t i = 0; i < source.size(); ++i) {
      target[i].assign(source[i].size(), '.');
      out.push_back({reinterpret_cast<std::byte*>(source[i].data()), static_cast<std::int64_t>(source[i].size()),
                     [&log, i] { log.push_back("before " + std::to_string(i)); }, {}});
      in.push_back({reinterpret_cast<std::byte*>(target[i].data()), static_cast<std::int64_t>(target[i].size()), {},
                    [&log, &target, i] { log.push_back("after " + std::to_string(i) + " " + target[i]); }});
    }
    std::vector<std::string> buffer(static_cast<std::size_t>(buffers), std::string(4, ' '));
    wire_buckets b;
    b.bucket_bytes = 4;
    for (auto& s : buffer) b.buffers.push_back(reinterpret_cast<std::byte*>(s.data()));
    b.copy = [](std::byte* to, const std::byte* from, std::int64_t n) { std::memcpy(to, from, n); };
    b.pack_from = &out;
    b.start = [&](std::byte* bucket, std::byte*, std::int64_t n) -> std::function<void()> {
      wire.emplace_back(reinterpret_cast<const char*>(bucket), static_cast<std::size_t>(n));
      log.push_back("send " + wire.back());
      return [] {};
    };
    stream_buckets(b);
    EXPECT_EQ(wire, (std::vector<std::string>{"abcd", "efgh", "ijkl", "mnop", "qrst", "u"}));
    EXPECT_EQ(log, (std::vector<std::string>{"before 0", "send abcd", "before 1", "before 2", "send efgh",
                                             "before 3", "send ijkl", "send mnop", "send qrst", "before 4",
                                             "send u"}));  // empty segments as soon as they are reached
    log.clear();
    std::size_t next = 0;
    b.pack_from = nullptr;
    b.unpack_into = &in;
    b.start = [&](std::byte* bucket, std::byte*, std::int64_t n) -> std::function<void()> {
      const std::string arrived = wire[next++];
      EXPECT_EQ(static_cast<std::int64_t>(arrived.size()), n);
      return [bucket, arrived] { std::memcpy(bucket, arrived.data(), arrived.size()); };
    };
    stream_buckets(b);
    EXPECT_EQ(target, source);
    EXPECT_EQ(log, (std::vector<std::string>{"after 0 abcdefg", "after 1 ", "after 2 hij", "after 3 klmnopqrstu",
                                             "after 4 "}));

    // Both ends in one process (NCCL's one rank): buckets land in buffers of their own.
    for (auto& t : target) std::fill(t.begin(), t.end(), '.');
    std::vector<std::string> landing(buffer.size(), std::string(4, ' '));
    for (auto& s : landing) b.landing.push_back(reinterpret_cast<std::byte*>(s.data()));
    b.pack_from = &out;
    b.start = [&](std::byte* from, std::byte* into, std::int64_t n) -> std::function<void()> {
      EXPECT_NE(from, into);
      return [=] { std::memcpy(into, from, static_cast<std::size_t>(n)); };
    };
    stream_buckets(b);
    EXPECT_EQ(target, source);
  }
}

// This process serves rank 0 of each test's group; the peer process connects.

// The peer process, started with posix_spawn (a fresh process: no fork of this one's
// torch threads).
struct peer {
  pid_t pid = -1;
  peer(int port, const std::string& mode, std::int64_t bucket, int rounds, const std::string& out) {
    std::vector<std::string> args = {TROUPE_WEIGHT_PEER, std::to_string(port), mode, std::to_string(bucket),
                                     std::to_string(rounds), out};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) ADD_FAILURE() << "spawn failed";
  }
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// What the peer should write for `weights` received as `version`: each tensor's bytes
// as sent (raw), or as FP8 decodes them.
std::string expected_lines(std::int64_t version, const named_tensors& weights, bool fp8, std::int64_t wire_bytes) {
  std::string out;
  const fp8_weights_config cfg;
  for (const auto& w : weights) {
    auto t = w.value();
    if (fp8 && t.is_floating_point() && cfg.selects(w.key(), t.dim()))
      t = fp8_decode_tensor(fp8_encode_tensor(t), t.scalar_type());
    out += std::to_string(version) + " " + w.key() + " " + std::to_string(bytes_hash(t)) + "\n";
  }
  return out + "wire_bytes " + std::to_string(wire_bytes) + "\n";
}

// Which end packs or unpacks one bucket while the next is on the wire.
struct buffering {
  bool sender_double = true;
  bool receiver_double = true;
};

void send_and_compare(bool fp8, std::int64_t bucket, bool strided = false, buffering buffers = {}) {
  testing::temp_dir dir;
  const int port = reserve_tcp_port();
  peer p(port,
         std::string(fp8 ? "fp8" : "raw") + (strided ? "-strided" : "") + (buffers.receiver_double ? "" : "-single"),
         bucket, 2, dir / "received.txt");
  gloo_transport_options o;
  o.port = port;
  o.rank = 0;
  o.timeout_s = 60;
  o.bucket_bytes = bucket;
  o.double_buffer = buffers.sender_double;
  if (fp8) o.fp8 = fp8_weights_config{};
  std::string expected;
  std::int64_t wire_bytes = 0;
  {
    gloo_weight_transport transport(o);
    for (int version : {7, 8}) {
      const auto w = transport_weights(version);
      transport.send(version, w);
      wire_bytes = transport.last_wire_bytes();
      expected += expected_lines(version, w, fp8, wire_bytes);
    }
  }
  ASSERT_EQ(p.wait(), 0);
  EXPECT_EQ(read_text(dir / "received.txt"), expected);
  const std::int64_t raw_bytes = 320 * 64 * 2 + 300 * 260 * 4 + 300 * 4 + 1000 * 700 * 4 + 64 * 200 * 2 + 64 * 4 + 8;
  if (fp8) {
    // q_proj, down_proj, up_proj as codes + one fp32 scale per 128 x 128 block.
    EXPECT_EQ(wire_bytes, raw_bytes - 300 * 260 * 3 - 1000 * 700 * 3 - 64 * 200 + 4 * (3 * 3 + 8 * 6 + 1 * 2));
  } else {
    EXPECT_EQ(wire_bytes, raw_bytes);
  }
}

TEST(gloo_weight_transport, a_second_process_receives_identical_bytes_in_1_mib_buckets) { send_and_compare(false, 1 << 20); }

TEST(gloo_weight_transport, a_second_process_receives_one_tensor_across_many_small_buckets) {
  send_and_compare(false, 100003);  // buckets end inside tensors
}

TEST(gloo_weight_transport, fp8_on_the_wire_arrives_as_the_fp8_round_trip_of_the_selected_tensors) {
  send_and_compare(true, 1 << 20);
}

TEST(gloo_weight_transport, non_contiguous_receiver_tensors_are_filled_through_staging_raw_and_fp8) {
  send_and_compare(false, 1 << 20, true);
  send_and_compare(true, 1 << 20, true);
}

// The expected lines are the same bytes whichever end double-buffers: double buffering
// only reorders the packing and unpacking around the broadcasts, never the bytes.
TEST(gloo_weight_transport, double_and_single_buffering_deliver_identical_bytes_raw_and_fp8) {
  for (bool fp8 : {false, true}) {
    for (const buffering b : {buffering{false, false}, buffering{true, false}, buffering{false, true}}) {
      SCOPED_TRACE(std::string(fp8 ? "fp8" : "raw") + " sender " + (b.sender_double ? "double" : "single") +
                   ", receiver " + (b.receiver_double ? "double" : "single"));
      send_and_compare(fp8, 100003, /*strided=*/true, b);  // buckets end inside tensors and codes
    }
  }
}

TEST(gloo_weight_transport, a_receiver_whose_tensors_differ_is_refused_and_the_sender_fails) {
  testing::temp_dir dir;
  const int port = reserve_tcp_port();
  peer p(port, "misfit", 1 << 20, 1, dir / "received.txt");
  gloo_transport_options o;
  o.port = port;
  o.timeout_s = 10;
  gloo_weight_transport transport(o);
  EXPECT_THROW(transport.send(1, transport_weights(1)), system_error);
  EXPECT_EQ(p.wait(), 3);  // input_error in the peer
}

TEST(gloo_weight_transport, bad_options_are_input_errors) {
  gloo_transport_options o;
  o.rank = 2;
  EXPECT_THROW(gloo_weight_transport{o}, input_error);
  o.rank = 0;
  o.bucket_bytes = 0;
  EXPECT_THROW(gloo_weight_transport{o}, input_error);
}

}  // namespace
}  // namespace troupe
