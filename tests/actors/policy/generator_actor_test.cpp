#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/policy/generator_actor.hpp"
#include "actors/policy/generator_pool.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/system.hpp"
#include "weights/weight_snapshot.hpp"
#include "core/net.hpp"
#include "policies/checkpoint.hpp"
#include "weights/fp8_weights.hpp"
#include "policies/generation.hpp"

namespace troupe {
namespace {

using namespace std::chrono_literals;
const std::string model_dir = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/hf/llama";

std::vector<gen_result> generate(caf::scoped_actor& self, const generator_actor& gen, std::vector<gen_request> reqs) {
  std::vector<gen_result> out;
  self->request(gen, 30s, generate_atom::value, std::move(reqs))
    .receive([&](std::vector<gen_result>& r) { out = std::move(r); }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  return out;
}

TEST(generator_actor, samples_like_the_engine_and_swaps_weights_between_calls) {
  caf::actor_system_config cfg;
  configure_actor_system(cfg, system_section{});
  caf::actor_system sys{cfg};
  auto tok = std::shared_ptr<const tokenizer>(load_tokenizer_dir(model_dir));
  auto gen = spawn_generator(sys, load_pretrained(model_dir), tok, /*version=*/3);
  caf::scoped_actor self{sys};

  gen_request r;
  r.prompt = {5, 6, 7};
  r.max_new_tokens = 8;
  r.temperature = 0.8;
  r.seed = 11;
  auto out = generate(self, gen, {r, r});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].tokens, out[1].tokens) << "same request and seed";
  EXPECT_EQ(out[0].weight_version, 3);
  EXPECT_EQ(out[0].text, tok->decode(out[0].tokens));

  generation_engine engine(load_pretrained(model_dir), tok.get());
  generation_request g;
  g.prompt = r.prompt;
  g.seed = r.seed;
  g.params.max_new_tokens = 8;
  g.params.temperature = 0.8;
  EXPECT_EQ(engine.generate({g})[0].tokens, out[0].tokens);

  // Publish other weights: the generator uses them from the next call on.
  auto other = load_pretrained(model_dir);
  other->init_weights(99);
  weight_update u{4, std::make_shared<const weight_snapshot>(other)};
  std::int64_t now = 0;
  self->request(gen, 30s, weights_atom::value, u).receive([&](std::int64_t v) { now = v; }, [](caf::error&) {});
  EXPECT_EQ(now, 4);
  r.temperature = 0;
  auto after = generate(self, gen, {r});
  generation_engine other_engine(other, nullptr);
  g.params.temperature = 0;
  EXPECT_EQ(after[0].tokens, other_engine.generate({g})[0].tokens);
  EXPECT_EQ(after[0].weight_version, 4);

  // A bad request fails the call, not the actor.
  gen_request bad;
  caf::error err;
  self->request(gen, 30s, generate_atom::value, std::vector<gen_request>{bad})
    .receive([](std::vector<gen_result>&) {}, [&](caf::error& e) { err = e; });
  EXPECT_EQ(static_cast<errc>(err.code()), errc::bad_input);
  self->send_exit(gen, caf::exit_reason::user_shutdown);
}

std::vector<gen_request> sampled_requests(int n) {
  std::vector<gen_request> out;
  for (int i = 0; i < n; ++i) {
    gen_request r;
    r.prompt = {5, 6, static_cast<std::int32_t>(7 + i)};
    r.max_new_tokens = 6;
    r.temperature = 0.9;
    r.seed = 100 + static_cast<std::uint64_t>(i);
    out.push_back(r);
  }
  return out;
}

// A pool splits a batch over its generators and puts the answers back in order: the
// same tokens as one generator, since every request has its own seed. A killed member's
// part goes to the one left.
TEST(generator_pool, splits_batches_over_its_generators_and_survives_a_lost_one) {
  caf::actor_system_config cfg;
  configure_actor_system(cfg, system_section{});
  caf::actor_system sys{cfg};
  auto tok = std::shared_ptr<const tokenizer>(load_tokenizer_dir(model_dir));
  auto single = spawn_generator(sys, load_pretrained(model_dir), tok, 0);
  auto a = spawn_generator(sys, load_pretrained(model_dir), tok, 0);
  auto b = spawn_generator(sys, load_pretrained(model_dir), tok, 0);
  // Members are plain handles, as they come from cluster workers.
  auto pool = spawn_generator_pool(
    sys, {{{{caf::actor_cast<caf::actor>(a), "local"}, {}}, {{caf::actor_cast<caf::actor>(b), "w1"}, {}}}, {}});
  caf::scoped_actor self{sys};
  const auto reqs = sampled_requests(7);
  const auto expected = generate(self, single, reqs);
  const auto pooled = generate(self, pool, reqs);
  ASSERT_EQ(pooled.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(pooled[i].tokens, expected[i].tokens) << i;

  // b dies with the request on its way: its part is asked of a.
  auto pending = self->request(pool, 30s, generate_atom::value, reqs);
  self->send_exit(b, caf::exit_reason::kill);
  std::vector<gen_result> after;
  pending.receive([&](std::vector<gen_result>& r) { after = std::move(r); }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  ASSERT_EQ(after.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(after[i].tokens, expected[i].tokens) << i;

  self->send_exit(a, caf::exit_reason::kill);
  caf::error none_left;
  self->request(pool, 30s, generate_atom::value, reqs).receive([](std::vector<gen_result>&) {}, [&](caf::error& e) { none_left = e; });
  EXPECT_NE(render(none_left).find("lost"), std::string::npos) << render(none_left);
  for (const generator_actor& x : {single, pool}) self->send_exit(x, caf::exit_reason::user_shutdown);
}

// A member with a weight link (as on a cluster worker) gets new weights over c10d Gloo,
// the in-process member as a message; both then sample with them. With `fp8` the link
// carries FP8 codes (weight_sync.codec: fp8) and the update is what the trainer then
// publishes, weights that went through the codec: the far end must get the same bits.
void weights_over_a_link(bool fp8) {
  caf::actor_system_config cfg;
  configure_actor_system(cfg, system_section{});
  caf::actor_system sys{cfg};
  auto tok = std::shared_ptr<const tokenizer>(load_tokenizer_dir(model_dir));
  weight_link link;
  link.port = reserve_tcp_port();
  link.timeout_s = 30;
  if (fp8) link.fp8 = fp8_weights_config{};
  auto remote = spawn_generator(sys, load_pretrained(model_dir), tok, 0, [link]() -> std::unique_ptr<weight_transport> {
    return std::make_unique<gloo_weight_transport>(gloo_link_end(link, 1));
  });
  auto local = spawn_generator(sys, load_pretrained(model_dir), tok, 0);
  auto pool = spawn_generator_pool(
    sys, {{{{caf::actor_cast<caf::actor>(local), "local"}, {}}, {{caf::actor_cast<caf::actor>(remote), "w1"}, link}}, {}});
  caf::scoped_actor self{sys};

  auto other = load_pretrained(model_dir);
  other->init_weights(99);
  if (fp8) {
    torch::NoGradGuard no_grad;
    torch::OrderedDict<std::string, torch::Tensor> w;
    for (const auto& p : other->named_parameters()) w.insert(p.key(), p.value().detach());
    const auto published = fp8_decode_weights(fp8_encode_weights(w, fp8_weights_config{}));
    for (auto& p : other->named_parameters()) p.value().copy_(published[p.key()]);
  }
  for (std::int64_t version : {5, 6}) {  // the second update reuses the link
    weight_update u{version, std::make_shared<const weight_snapshot>(other)};
    std::int64_t now = -1;
    self->request(pool, 60s, weights_atom::value, u).receive([&](std::int64_t v) { now = v; }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
    EXPECT_EQ(now, version);
  }
  auto reference = spawn_generator(sys, other, tok, 6);
  auto reqs = sampled_requests(4);
  const auto expected = generate(self, reference, reqs);
  for (const generator_actor& g : {local, remote}) {
    const auto got = generate(self, g, reqs);
    ASSERT_EQ(got.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(got[i].tokens, expected[i].tokens) << i;
      EXPECT_EQ(got[i].logprobs, expected[i].logprobs) << i << ": the same weights give the same logprobs";
      EXPECT_EQ(got[i].weight_version, 6);
    }
  }
  for (const generator_actor& x : {local, remote, pool, reference}) self->send_exit(x, caf::exit_reason::user_shutdown);
}

TEST(generator_pool, sends_weights_over_a_link_to_remote_members) { weights_over_a_link(false); }
TEST(generator_pool, an_fp8_link_gives_the_remote_member_the_published_weights_bit_for_bit) { weights_over_a_link(true); }

}  // namespace
}  // namespace troupe
