#include <gtest/gtest.h>

#include <caf/all.hpp>

#include "actors/atoms.hpp"
#include "actors/errors.hpp"
#include "actors/generator_actor.hpp"
#include "actors/message_types.hpp"
#include "actors/system.hpp"
#include "actors/weight_snapshot.hpp"
#include "policies/checkpoint.hpp"
#include "policies/generation.hpp"

namespace troupe {
namespace {

using namespace std::chrono_literals;
const std::string model_dir = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/hf/llama";

std::vector<gen_result> generate(caf::scoped_actor& self, const caf::actor& gen, std::vector<gen_request> reqs) {
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

}  // namespace
}  // namespace troupe
