// The trainer actor with the offline objectives: its message type travels through a
// serializer, and it answers train / eval / save for SFT and DPO, turning bad batches,
// and messages of another objective, into bad_input.
#include <gtest/gtest.h>
#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <filesystem>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/policy/trainer_actor.hpp"
#include "actors/system.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

struct offline_trainer_actor : ::testing::Test {
  offline_trainer_actor() {
    configure_actor_system(cfg, system_section{});
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;

  // A metrics answer of `a` (train, eval), failing the test on an error.
  template <class... Ts>
  std::map<std::string, double> ask(caf::scoped_actor& self, const trainer_actor& a, Ts... xs) {
    std::map<std::string, double> m;
    caf::error err;
    self->request(a, std::chrono::seconds(60), xs...).receive([&](std::map<std::string, double>& x) { m = x; },
                                                               [&](caf::error& e) { err = e; });
    EXPECT_FALSE(err) << render(err);
    return m;
  }
};

causal_lm tiny_model(std::uint64_t seed = 1) {
  policy_section p;
  p.hidden_size = 16;
  p.intermediate_size = 32;
  p.num_hidden_layers = 1;
  p.num_attention_heads = 2;
  p.num_key_value_heads = 1;
  causal_lm m(small_model_config(p, 12));
  m->init_weights(seed);
  return m;
}

token_rows rows_of(std::initializer_list<tokenized_example> ex) { return pad_examples(ex); }

TEST_F(offline_trainer_actor, token_rows_round_trip_through_a_serializer) {
  token_rows rows = pack_examples({{{1, 2}, {3}}, {{4}, {5, 6}}}, 8);
  caf::message msg = caf::make_message(rows);
  std::vector<char> buf;
  caf::binary_serializer sink{*sys, buf};
  ASSERT_FALSE(sink(msg));
  caf::message out;
  caf::binary_deserializer source{*sys, buf};
  ASSERT_FALSE(source(out));
  ASSERT_TRUE(out.match_elements<token_rows>());
  const auto& back = out.get_as<token_rows>(0);
  EXPECT_EQ(back.ids, rows.ids);
  EXPECT_EQ(back.loss_mask, rows.loss_mask);
  EXPECT_EQ(back.segments, rows.segments);
}

TEST_F(offline_trainer_actor, answers_sft_and_dpo_steps_evals_and_saves) {
  testing::temp_dir dir;
  caf::scoped_actor self{*sys};
  trainer_actor_options o;
  o.objective = trainer_objective::sft;
  o.trainer.lr = 1e-2;
  o.trainer.microbatch_size = 2;
  auto sft = spawn_trainer_actor(*sys, tiny_model(), o);
  auto rows = rows_of({{{1, 2, 3}, {4, 5}}, {{1}, {6}}});
  auto m = ask(self, sft, train_atom::value, rows);
  EXPECT_GT(m.at("sft/loss"), 0.0);
  EXPECT_EQ(m.at("sft/tokens"), 3.0);
  auto e = ask(self, sft, eval_atom::value, rows);
  EXPECT_EQ(e.at("tokens"), 3.0);
  bool saved = false;
  self->request(sft, std::chrono::seconds(60), save_atom::value, dir / "ckpt").receive([&](bool b) { saved = b; },
                                                                                       [](caf::error&) {});
  EXPECT_TRUE(saved);
  EXPECT_TRUE(std::filesystem::exists(dir / "ckpt/model.safetensors"));
  // A row that trains its first token is malformed: bad_input, not a crash of the caller.
  auto bad = rows;
  bad.loss_mask[0][0] = 1;
  caf::error err;
  self->request(sft, std::chrono::seconds(60), train_atom::value, bad)
      .receive([](std::map<std::string, double>&) {}, [&](caf::error& x) { err = x; });
  ASSERT_TRUE(err);
  EXPECT_EQ(static_cast<errc>(err.code()), errc::bad_input) << render(err);
  // A rollout batch is GRPO's: an sft trainer refuses it, naming why.
  sft = spawn_trainer_actor(*sys, tiny_model(), o);
  err = {};
  rollout_batch rb;
  rb.prompts = {{1, 2}};
  rb.completions = {{3}};
  rb.gen_logprobs = {{-1.0f}};
  rb.advantages = {1.0};
  self->request(sft, std::chrono::seconds(60), train_atom::value, rb)
      .receive([](std::map<std::string, double>&) {}, [&](caf::error& x) { err = x; });
  ASSERT_TRUE(err);
  EXPECT_EQ(static_cast<errc>(err.code()), errc::bad_input) << render(err);
  EXPECT_NE(render(err).find("needs the grpo objective"), std::string::npos) << render(err);
  // And token rows are not GRPO's.
  trainer_actor_options g = o;
  g.objective = trainer_objective::grpo;
  auto grpo = spawn_trainer_actor(*sys, tiny_model(), g);
  err = {};
  self->request(grpo, std::chrono::seconds(60), train_atom::value, rows)
      .receive([](std::map<std::string, double>&) {}, [&](caf::error& x) { err = x; });
  ASSERT_TRUE(err);
  EXPECT_EQ(static_cast<errc>(err.code()), errc::bad_input) << render(err);
  EXPECT_NE(render(err).find("not grpo"), std::string::npos) << render(err);

  o.objective = trainer_objective::dpo;
  auto dpo = spawn_trainer_actor(*sys, tiny_model(), o);
  auto pairs = pair_examples({{{{1, 2}, {3}}, {{1, 2}, {4}}}});
  auto before = ask(self, dpo, eval_atom::value, pairs);
  EXPECT_NEAR(before.at("dpo/eval_loss"), std::log(2.0), 1e-6);
  auto step = ask(self, dpo, train_atom::value, pairs);
  EXPECT_EQ(step.count("dpo/reward_margin"), 1u);
  self->send_exit(dpo, caf::exit_reason::user_shutdown);
  o.trainer.microbatch_size = 3;
  EXPECT_THROW(spawn_trainer_actor(*sys, tiny_model(), o), input_error) << "odd microbatch for pairs";
}

// Resume: a trainer of other weights that loads the reference of checkpoint 0 and the
// checkpoint of step 2 takes step 3 exactly as the trainer that never stopped.
TEST_F(offline_trainer_actor, a_loaded_checkpoint_and_reference_continue_bit_identically) {
  testing::temp_dir dir;
  caf::scoped_actor self{*sys};
  auto save = [&](const trainer_actor& a, const std::string& to) {
    self->request(a, std::chrono::seconds(60), save_atom::value, to).receive([](bool) {}, [](caf::error&) {});
  };
  trainer_actor_options o;
  o.objective = trainer_objective::dpo;
  o.trainer.lr = 1e-2;
  o.trainer.microbatch_size = 2;
  auto pairs = pair_examples({{{{1, 2}, {3}}, {{1, 2}, {4}}}, {{{5}, {6, 7}}, {{5}, {8}}}});
  auto whole = spawn_trainer_actor(*sys, tiny_model(), o);
  save(whole, dir / "step_0");
  ask(self, whole, train_atom::value, pairs);
  ask(self, whole, train_atom::value, pairs);
  save(whole, dir / "step_2");
  const auto want = ask(self, whole, train_atom::value, pairs);

  auto resumed = spawn_trainer_actor(*sys, tiny_model(7), o);
  std::int64_t step = -1;
  self->request(resumed, std::chrono::seconds(60), load_atom::value, dir / "step_0", dir / "step_2")
      .receive([&](std::int64_t s) { step = s; }, [](caf::error& e) { FAIL() << render(e); });
  EXPECT_EQ(step, 2);
  const auto got = ask(self, resumed, train_atom::value, pairs);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [k, v] : want) EXPECT_EQ(got.at(k), v) << k;
  for (const auto& a : {whole, resumed}) self->send_exit(a, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace troupe
