#include <gtest/gtest.h>

#include "guardrails/rail.hpp"
#include "guardrails/rails_file.hpp"

namespace troupe {
namespace {

TEST(max_length_rail, penalizes_output_over_the_limit_and_ignores_input) {
  auto r = make_max_length_rail(4, 0.5);
  EXPECT_EQ(r->check(rail_stage::output, "1234").action, rail_action::allow);
  auto v = r->check(rail_stage::output, "12345");
  EXPECT_EQ(v.action, rail_action::penalize);
  EXPECT_DOUBLE_EQ(v.penalty, 0.5);
  EXPECT_EQ(v.reason, "5 characters > 4");
  EXPECT_EQ(r->check(rail_stage::input, "123456789").action, rail_action::allow);
  EXPECT_EQ(make_max_length_rail(1, 0)->check(rail_stage::output, "12").action, rail_action::block);
}

TEST(rails, are_made_from_the_guardrails_section) {
  guardrails_section g;
  EXPECT_TRUE(make_rails(g).output.empty());
  g.max_output_chars = 10;
  auto rails = std::move(make_rails(g).output);
  ASSERT_EQ(rails.size(), 1u);
  EXPECT_EQ(rails[0]->name(), "max_length");
}

}  // namespace
}  // namespace troupe
