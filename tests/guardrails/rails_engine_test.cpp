#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <iostream>
#include <thread>

#include "core/config_tree.hpp"
#include "guardrails/rails_engine.hpp"
#include "tests/guardrails/fakes.hpp"

namespace troupe {
namespace {

using namespace std::chrono_literals;

rails_engine engine_of(const std::string& yaml, const rail_services& s = {}, rails_engine_options o = {}) {
  return rails_engine(build_rails_file(parse_config_text(yaml, "rails.yaml"), s), o);
}

const rail_decision& decision(const rails_result& r, const std::string& rail) {
  for (const auto& d : r.log)
    if (d.rail == rail) return d;
  throw std::runtime_error("no decision for " + rail);
}

TEST(rails_engine, masks_and_rewrites_in_position_order_and_overlaps_keep_the_earlier_longer_span) {
  using mode = rails_engine_options::concurrency;
  for (auto m : {mode::automatic, mode::always, mode::never}) {
    rails_engine_options o;
    o.mode = m;
    auto e = engine_of(R"(input:
  - {name: pii, type: pii, on_trigger: mask}
  - {name: words, type: regex, patterns: ['ann', 'now'], on_trigger: {action: rewrite, replacement: '***'}}
)", {}, o);
    auto r = e.check(rail_stage::input, "mail ann@example.com now");
    EXPECT_EQ(r.text, "mail [EMAIL] ***");
    EXPECT_EQ(r.action, rail_action::rewrite) << "rewrite is stronger than mask";
    ASSERT_EQ(r.verdicts.size(), 2u);
    EXPECT_EQ(r.verdicts[0].rail, "pii");
    EXPECT_EQ(r.log.size(), 2u);
    EXPECT_TRUE(r.detected());
  }
}

TEST(apply_spans, equal_spans_keep_the_rail_listed_first) {
  EXPECT_EQ(apply_spans("abcdef", {{1, 3, "X"}, {1, 3, "Y"}, {2, 5, "Z"}, {5, 6, ""}}), "aXde");
  EXPECT_EQ(apply_spans("abc", {}), "abc");
}

TEST(rails_engine, sums_penalties_and_logs_without_changing_the_text) {
  auto e = engine_of(R"(output:
  - {name: a, type: keywords, keywords: [sorry], on_trigger: {action: penalize, weight: 0.5}}
  - {name: b, type: length, max_chars: 5, on_trigger: {action: penalize, weight: 0.25}}
  - {name: c, type: keywords, keywords: [hello], on_trigger: log}
)");
  auto r = e.check(rail_stage::output, "hello, sorry");
  EXPECT_EQ(r.action, rail_action::penalize);
  EXPECT_DOUBLE_EQ(r.penalty, 0.75);
  EXPECT_EQ(r.text, "hello, sorry");
  EXPECT_EQ(decision(r, "c").action, rail_action::log);
  auto only_log = e.check(rail_stage::output, "hello");
  EXPECT_EQ(only_log.action, rail_action::log);
  EXPECT_FALSE(only_log.detected()) << "log alone is not a detection";
  EXPECT_EQ(e.check(rail_stage::input, "hello, sorry").log.size(), 0u) << "no input rails";
}

TEST(rails_engine, a_block_returns_the_first_blocking_rails_message_and_stops_a_slow_guard_model) {
  std::promise<void> gate;  // the guard model answers only after the check returned
  auto guard = std::make_shared<testing::fixed_guard>("no", gate.get_future().share());
  auto e = engine_of(R"(input:
  - {name: slow_guard, type: self_check, prompt: 'judge {text}', timeout_ms: 60000}
  - {name: words, type: keywords, keywords: [bomb], on_trigger: {action: block, message: 'No.'}}
  - {name: pii, type: pii, on_trigger: mask}
)", {nullptr, guard});
  auto r = e.check(rail_stage::input, "a bomb for ann@example.com");
  gate.set_value();
  EXPECT_TRUE(r.blocked());
  EXPECT_EQ(r.refusal, "No.");
  EXPECT_EQ(r.text, "a bomb for ann@example.com") << "a blocked check rewrites nothing";
  const auto& g = decision(r, "slow_guard");
  EXPECT_TRUE(g.stopped);
  EXPECT_EQ(g.note, "stopped: another rail blocked");
  EXPECT_EQ(decision(r, "words").action, rail_action::block);
}

TEST(rails_engine, runs_the_same_one_rail_after_another_when_not_concurrent) {
  rails_engine_options seq;
  seq.mode = rails_engine_options::concurrency::never;
  auto e = engine_of(R"(input:
  - {name: words, type: keywords, keywords: [bomb]}
  - {name: pii, type: pii, on_trigger: mask}
)", {}, seq);
  auto r = e.check(rail_stage::input, "a bomb for ann@example.com");
  EXPECT_TRUE(r.blocked());
  EXPECT_TRUE(decision(r, "pii").stopped) << "rails after a block do not run";
  EXPECT_EQ(e.check(rail_stage::input, "ann@example.com").text, "[EMAIL]");
}

TEST(rails_engine, counts_checks_and_triggers_per_rail_from_many_threads) {
  auto e = engine_of("input:\n  - {name: pii, type: pii, on_trigger: mask}\n  - {name: len, type: length, max_chars: 1000}\n");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 25; ++i) e.check(rail_stage::input, i % 5 == 0 ? "x@example.com" : "nothing");
    });
  for (auto& t : ts) t.join();
  auto c = e.counters();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].rail, "pii");
  EXPECT_EQ(c[0].checks, 100);
  EXPECT_EQ(c[0].triggers, 20);
  EXPECT_DOUBLE_EQ(c[0].trigger_rate(), 0.2);
  EXPECT_EQ(c[1].triggers, 0);
}

// --- rails that ask a model ---------------------------------------------------------------

std::string self_check_yaml(const std::string& extra) {
  return "input:\n  - {name: guard, type: self_check, prompt: 'Harmful? {text} Answer yes or no.'" + extra + "}\n";
}

TEST(self_check_rail, triggers_on_a_strict_yes_and_fills_the_prompt) {
  auto yes = std::make_shared<testing::fixed_guard>("  Yes.\n");
  auto r = engine_of(self_check_yaml(""), {nullptr, yes}).check(rail_stage::input, "hi there");
  EXPECT_TRUE(r.blocked());
  EXPECT_EQ(r.verdicts[0].reason, "guard model answered yes");
  EXPECT_EQ(yes->last_prompt, "Harmful? hi there Answer yes or no.");
  auto no = std::make_shared<testing::fixed_guard>("no");
  EXPECT_EQ(engine_of(self_check_yaml(""), {nullptr, no}).check(rail_stage::input, "x").action, rail_action::allow);
  EXPECT_TRUE(engine_of(self_check_yaml(", trigger_on: 'no'"), {nullptr, no}).check(rail_stage::input, "x").blocked());
}

TEST(self_check_rail, an_answer_that_is_not_yes_or_no_gives_the_configured_failure_result) {
  auto vague = std::make_shared<testing::fixed_guard>("Yes, but only partly");
  auto closed = engine_of(self_check_yaml(", on_failure: fail_closed"), {nullptr, vague}).check(rail_stage::input, "x");
  EXPECT_TRUE(closed.blocked());
  EXPECT_EQ(closed.log[0].note, "guard model gave no yes/no answer: fail-closed (triggered)");
  auto open = engine_of(self_check_yaml(", on_failure: fail_open"), {nullptr, vague}).check(rail_stage::input, "x");
  EXPECT_EQ(open.action, rail_action::allow);
  EXPECT_EQ(open.log[0].note, "guard model gave no yes/no answer: fail-open (allowed)");
  auto broken = std::make_shared<testing::fixed_guard>("throw");
  auto failed = engine_of(self_check_yaml(""), {nullptr, broken}).check(rail_stage::input, "x");
  EXPECT_TRUE(failed.blocked()) << "fail_closed is the default";
  EXPECT_EQ(failed.log[0].note, "guard model failed: connection refused: fail-closed (triggered)");
}

TEST(self_check_rail, a_guard_model_past_its_timeout_gives_fail_closed_or_fail_open_and_the_log_says_which) {
  std::promise<void> gate;  // the guard model answers only after both checks returned
  auto sleepy = std::make_shared<testing::fixed_guard>("no", gate.get_future().share());
  auto closed = engine_of(self_check_yaml(", timeout_ms: 20, on_failure: fail_closed"), {nullptr, sleepy})
                  .check(rail_stage::input, "x");
  EXPECT_TRUE(closed.blocked());
  EXPECT_EQ(closed.log[0].note, "guard model timed out after 20 ms: fail-closed (triggered)");
  EXPECT_EQ(closed.verdicts[0].reason, closed.log[0].note);
  auto open = engine_of(self_check_yaml(", timeout_ms: 20, on_failure: fail_open"), {nullptr, sleepy})
                .check(rail_stage::input, "x");
  EXPECT_EQ(open.action, rail_action::allow);
  EXPECT_TRUE(open.verdicts.empty());
  EXPECT_EQ(open.log[0].note, "guard model timed out after 20 ms: fail-open (allowed)");
  gate.set_value();
}

std::string perplexity_yaml(const std::string& extra) {
  return "input:\n  - {name: jb, type: perplexity" + extra + "}\n";
}

TEST(perplexity_rail, length_per_perplexity_triggers_on_long_fluent_text) {
  // lp = -1 everywhere: perplexity e; 300 characters / e = 110 >= 89.79.
  auto scorer = std::make_shared<testing::constant_scorer>(-1.0);
  auto e = engine_of(perplexity_yaml(", checks: [length_per_perplexity]"), {scorer, nullptr});
  auto r = e.check(rail_stage::input, std::string(300, 'a'));
  EXPECT_TRUE(r.blocked());
  EXPECT_EQ(r.verdicts[0].reason, "length/perplexity 110.4 >= 89.79");
  EXPECT_EQ(e.check(rail_stage::input, std::string(200, 'a')).action, rail_action::allow) << "73.6 < 89.79";
}

TEST(perplexity_rail, prefix_suffix_perplexity_triggers_on_gibberish_affixes_of_long_prompts) {
  // lp = -8: perplexity e^8 = 2981 >= 1845.65, for the first and last 20 words.
  auto scorer = std::make_shared<testing::constant_scorer>(-8.0);
  auto e = engine_of(perplexity_yaml(", checks: [prefix_suffix_perplexity]"), {scorer, nullptr});
  std::string words;
  for (int i = 0; i < 25; ++i) words += "w" + std::to_string(i) + " ";
  auto r = e.check(rail_stage::input, words);
  EXPECT_TRUE(r.blocked());
  EXPECT_EQ(r.verdicts[0].reason, "prefix perplexity 2981 >= 1846");
  EXPECT_EQ(e.check(rail_stage::input, "too few words").action, rail_action::allow);
  EXPECT_EQ(scorer->calls.load(), 1) << "only the long text was scored";
}

TEST(perplexity_rail, a_slow_scorer_gives_the_configured_failure_result) {
  std::promise<void> gate;  // the scorer answers only after both checks returned
  auto slow = std::make_shared<testing::constant_scorer>(-1.0, gate.get_future().share());
  auto open = engine_of(perplexity_yaml(", timeout_ms: 20, on_failure: fail_open"), {slow, nullptr})
                .check(rail_stage::input, "hello");
  EXPECT_EQ(open.action, rail_action::allow);
  EXPECT_EQ(open.log[0].note, "scorer timed out after 20 ms: fail-open (allowed)");
  auto closed = engine_of(perplexity_yaml(", timeout_ms: 20"), {slow, nullptr}).check(rail_stage::input, "hello");
  EXPECT_TRUE(closed.blocked());
  EXPECT_EQ(closed.log[0].note, "scorer timed out after 20 ms: fail-closed (triggered)");
  gate.set_value();
}

// --- big input ------------------------------------------------------------------------------

TEST(rails_engine, checks_a_megabyte_of_text_and_masks_all_of_its_pii) {
  auto e = rails_engine(load_rails_file(std::string(TROUPE_SOURCE_DIR) + "/examples/rails/default.yaml"));
  std::string text;
  const std::string filler = "The quick brown fox jumps over the lazy dog, version 1.2.3.4.5, order 1234567890123456. ";
  int pii = 0;
  while (text.size() < (1u << 20)) {
    text += filler;
    if (text.size() % 97 < 3) {
      text += "write to ann@example.com or 4111 1111 1111 1111. ";
      pii += 2;
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto r = e.check(rail_stage::input, text);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ info ] " << text.size() << " bytes with " << pii << " PII items checked in " << ms << " ms\n";
  ASSERT_GT(pii, 0);
  EXPECT_EQ(r.action, rail_action::mask);
  std::size_t emails = 0, cards = 0;
  for (auto p = r.text.find("[EMAIL]"); p != std::string::npos; p = r.text.find("[EMAIL]", p + 1)) ++emails;
  for (auto p = r.text.find("[CREDIT_CARD]"); p != std::string::npos; p = r.text.find("[CREDIT_CARD]", p + 1)) ++cards;
  EXPECT_EQ(emails + cards, static_cast<std::size_t>(pii));
  EXPECT_EQ(emails, cards);
  EXPECT_EQ(r.text.find("ann@example.com"), std::string::npos);
  auto out = e.check(rail_stage::output, text);
  EXPECT_EQ(out.action, rail_action::mask) << "PII masked; too_long penalizes as well";
  EXPECT_DOUBLE_EQ(out.penalty, 0.5);
}

}  // namespace
}  // namespace troupe
