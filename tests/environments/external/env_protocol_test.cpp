// The wire codec of the external-environment protocol: what one side encodes the other
// decodes, and malformed frames are refused with the field named.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <msgpack.hpp>

#include "core/error.hpp"
#include "environments/external/env_protocol.hpp"

namespace troupe {
namespace {

using namespace env_protocol;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e.what();
  }
  return "(no error)";
}

// Packs a map built by `fill` (which packs `n` key/value pairs).
template <class F>
std::string packed_map(std::uint32_t n, F fill) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(n);
  fill(pk);
  return std::string(buf.data(), buf.size());
}

TEST(env_protocol, requests_round_trip) {
  request r;
  r.type = "reset";
  r.id = 7;
  r.env = "arithmetic";
  r.t = {"arithmetic/train/3", "12+34=", {{"answer", "46"}}};
  std::string frame;
  encode(r, frame);
  auto back = decode_request(frame);
  EXPECT_EQ(back.type, "reset");
  EXPECT_EQ(back.id, 7u);
  EXPECT_EQ(back.env, "arithmetic");
  EXPECT_EQ(back.t.id, "arithmetic/train/3");
  EXPECT_EQ(back.t.prompt, "12+34=");
  EXPECT_EQ(back.t.metadata, r.t.metadata);

  request s;
  s.type = "step";
  s.id = 8;
  s.episode = "e1";
  s.action = std::string("4\0" "6\n", 4);  // bytes survive, NUL included
  encode(s, frame);
  auto sb = decode_request(frame);
  EXPECT_EQ(sb.episode, "e1");
  EXPECT_EQ(sb.action, s.action);

  request h;
  h.type = "hello";
  h.id = 1;
  h.protocol = version;
  h.client = "troupe/test";
  encode(h, frame);
  EXPECT_EQ(decode_request(frame).protocol, 1);
}

TEST(env_protocol, replies_round_trip) {
  reply w;
  w.type = "welcome";
  w.id = 1;
  w.protocol = 1;
  w.environments = {{"arithmetic", "sums"}, {"guess", "a game"}};
  std::string frame;
  encode(w, frame);
  auto wb = decode_reply(frame);
  ASSERT_EQ(wb.environments.size(), 2u);
  EXPECT_EQ(wb.environments[1].name, "guess");
  EXPECT_EQ(wb.environments[1].summary, "a game");

  reply s;
  s.type = "step_result";
  s.id = 9;
  s.result.next = {"lower\n", {"\n"}};
  s.result.rewards = {{"correct", 1.0}, {"format", 0.25}};
  s.result.done = false;
  s.result.info = {{"hint", "lower"}};
  encode(s, frame);
  auto sb = decode_reply(frame);
  EXPECT_EQ(sb.id, 9u);
  EXPECT_EQ(sb.result.next.text, "lower\n");
  EXPECT_EQ(sb.result.next.stop_strings, std::vector<std::string>{"\n"});
  EXPECT_EQ(sb.result.rewards, s.result.rewards);
  EXPECT_FALSE(sb.result.done);
  EXPECT_EQ(sb.result.info, s.result.info);

  reply e;
  e.type = "error";
  e.id = 3;
  e.code = "unknown_episode";
  e.message = "gone";
  encode(e, frame);
  auto eb = decode_reply(frame);
  EXPECT_EQ(eb.code, "unknown_episode");
  EXPECT_EQ(eb.message, "gone");
}

TEST(env_protocol, integer_rewards_read_as_numbers_and_optional_fields_default) {
  // A server in another language may write 1 for 1.0 and leave out info and stop_strings.
  auto frame = packed_map(5, [](auto& pk) {
    pk.pack(std::string("type")), pk.pack(std::string("step_result"));
    pk.pack(std::string("id")), pk.pack(4);
    pk.pack(std::string("observation")), pk.pack(std::string(""));
    pk.pack(std::string("rewards")), pk.pack_map(1), pk.pack(std::string("correct")), pk.pack(1);
    pk.pack(std::string("done")), pk.pack(true);
  });
  auto r = decode_reply(frame);
  EXPECT_EQ(r.result.rewards.at("correct"), 1.0);
  EXPECT_TRUE(r.result.info.empty());
  EXPECT_TRUE(r.result.next.stop_strings.empty());
}

// Rewards go out as float64 whatever their value. 2^64 used to reach msgpack-cxx's
// integer shortcut, whose range check lets it into an out-of-range uint64_t cast (the
// env_protocol fuzzer's find); the others are the edges of that shortcut.
TEST(env_protocol, rewards_of_any_magnitude_round_trip_exactly_as_float64) {
  const std::vector<double> values = {18446744073709551616.0, 18446744073709549568.0, -9223372036854775808.0,
                                      1e300, -0.0, 3.0, 0.1, -2.5};
  for (const double v : values) {
    reply s;
    s.type = "step_result";
    s.id = 1;
    s.result.rewards = {{"correct", v}};
    std::string frame;
    encode(s, frame);
    EXPECT_NE(frame.find('\xcb'), std::string::npos) << v << " went out as float64";
    const double back = decode_reply(frame).result.rewards.at("correct");
    EXPECT_EQ(back, v);
    EXPECT_EQ(std::signbit(back), std::signbit(v)) << v;
  }
}

void expect_error(const std::string& frame, const std::string& want, const limits& lim = {}) {
  const auto got = error_of([&] { decode_reply(frame, lim); });
  EXPECT_NE(got.find(want), std::string::npos) << "got: " << got;
}

TEST(env_protocol, malformed_replies_name_what_is_wrong) {
  expect_error(std::string("\xc1", 1), "not valid msgpack");        // 0xc1 is never used
  expect_error(std::string("\x85\xa4type", 6), "not a complete msgpack value");
  expect_error(std::string("\x93\x01\x02\x03", 4), "reply: expected a map, got a list");
  reply p;
  p.type = "pong";
  p.id = 2;
  std::string ok;
  encode(p, ok);
  expect_error(ok + "x", "1 bytes after the msgpack value");
  expect_error(packed_map(1, [](auto& pk) { pk.pack(std::string("id")), pk.pack(1); }), "missing field 'type'");
  expect_error(packed_map(2, [](auto& pk) {
                 pk.pack(std::string("type")), pk.pack(std::string("pong"));
                 pk.pack(std::string("id")), pk.pack(-1);
               }),
               "field 'id': expected a non-negative integer, got an integer");
  expect_error(packed_map(2, [](auto& pk) {
                 pk.pack(std::string("type")), pk.pack(std::string("surprise"));
                 pk.pack(std::string("id")), pk.pack(1);
               }),
               "unknown type 'surprise'");
  // A step_result whose reward is text and whose done is missing.
  auto bad_reward = packed_map(4, [](auto& pk) {
    pk.pack(std::string("type")), pk.pack(std::string("step_result"));
    pk.pack(std::string("id")), pk.pack(1);
    pk.pack(std::string("observation")), pk.pack(std::string(""));
    pk.pack(std::string("rewards")), pk.pack_map(1), pk.pack(std::string("correct")), pk.pack(std::string("yes"));
  });
  expect_error(bad_reward, "step_result: field 'rewards.correct': expected a number, got a string");
  auto no_done = packed_map(4, [](auto& pk) {
    pk.pack(std::string("type")), pk.pack(std::string("step_result"));
    pk.pack(std::string("id")), pk.pack(1);
    pk.pack(std::string("observation")), pk.pack(std::string(""));
    pk.pack(std::string("rewards")), pk.pack_map(0);
  });
  expect_error(no_done, "step_result: missing field 'done'");
  auto bin_text = packed_map(4, [](auto& pk) {
    pk.pack(std::string("type")), pk.pack(std::string("observation"));
    pk.pack(std::string("id")), pk.pack(1);
    pk.pack(std::string("episode")), pk.pack(std::string("e"));
    pk.pack(std::string("text")), pk.pack_bin(2), pk.pack_bin_body("ab", 2);
  });
  expect_error(bin_text, "observation: field 'text': expected a string, got binary bytes");
}

TEST(env_protocol, sizes_are_bounded_before_allocation) {
  limits lim;
  lim.max_frame_bytes = 64;
  lim.max_entries = 3;
  reply s;
  s.type = "step_result";
  s.result.next.text = std::string(100, 'x');
  std::string frame;
  encode(s, frame);
  expect_error(frame, "more than 64", lim);
  // A list header that claims four billion elements in a five-byte frame.
  expect_error(std::string("\xdd\xff\xff\xff\xff", 5), "not valid msgpack", lim);
  s.result.next.text.clear();
  s.result.rewards = {{"a", 1}, {"b", 1}, {"c", 1}, {"d", 1}};
  encode(s, frame);
  limits roomy = lim;
  roomy.max_frame_bytes = 1024;
  expect_error(frame, "not valid msgpack", roomy);  // msgpack's own map limit fires first
}

TEST(env_protocol, requests_are_checked_like_replies) {
  auto bad = packed_map(3, [](auto& pk) {
    pk.pack(std::string("type")), pk.pack(std::string("reset"));
    pk.pack(std::string("id")), pk.pack(5);
    pk.pack(std::string("env")), pk.pack(std::string("arithmetic"));
  });
  EXPECT_NE(error_of([&] { decode_request(bad); }).find("reset: missing field 'task'"), std::string::npos);
}

}  // namespace
}  // namespace troupe
