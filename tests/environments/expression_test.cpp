#include <gtest/gtest.h>

#include "environments/expression.hpp"

namespace troupe {
namespace {

rational value_of(const std::string& s) {
  auto r = evaluate_expression(s);
  EXPECT_TRUE(r.ok) << s << ": " << r.error;
  return r.value;
}

std::string error_of(const std::string& s, const expression_limits& l = {}) {
  auto r = evaluate_expression(s, l);
  EXPECT_FALSE(r.ok) << s;
  return r.error;
}

TEST(expression, follows_precedence_and_parentheses) {
  EXPECT_EQ(value_of("2+3*4"), (rational{14, 1}));
  EXPECT_EQ(value_of("(2+3)*4"), (rational{20, 1}));
  EXPECT_EQ(value_of("10-4-3"), (rational{3, 1})) << "left-associative";
  EXPECT_EQ(value_of("100/10/5"), (rational{2, 1}));
  EXPECT_EQ(value_of(" ( 25 - 5 ) * 4 "), (rational{80, 1}));
  EXPECT_EQ(value_of("-3*-2"), (rational{6, 1}));
  EXPECT_EQ(value_of("--4"), (rational{4, 1}));
}

TEST(expression, arithmetic_is_exact_over_rationals) {
  EXPECT_EQ(value_of("7/2"), (rational{7, 2}));
  EXPECT_EQ(value_of("7/2*2"), (rational{7, 1}));
  EXPECT_EQ(value_of("1/3+1/6"), (rational{1, 2}));
  EXPECT_EQ(value_of("6/-4"), (rational{-3, 2})) << "the sign lives in the numerator";
  EXPECT_EQ(value_of("(1/3)*3 - 1"), (rational{0, 1}));
  EXPECT_EQ(value_of("7/2").to_string(), "7/2");
  EXPECT_EQ(value_of("-12").to_string(), "-12");
}

TEST(expression, records_literals_in_order) {
  auto r = evaluate_expression("(25-5)*4+25");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.literals, (std::vector<std::int64_t>{25, 5, 4, 25}));
}

TEST(expression, division_by_zero_is_an_error_not_a_crash) {
  EXPECT_EQ(error_of("1/0"), "division by zero");
  EXPECT_EQ(error_of("5/(3-3)"), "division by zero");
  EXPECT_EQ(error_of("0/0"), "division by zero");
}

TEST(expression, unknown_characters_and_bad_syntax_name_the_place) {
  EXPECT_EQ(error_of("2+x"), "unexpected character 'x' at 2");
  EXPECT_EQ(error_of("2^3"), "unexpected character '^' at 1");
  EXPECT_EQ(error_of("1.5*2"), "unexpected character '.' at 1") << "no decimals";
  EXPECT_EQ(error_of("2 3"), "unexpected character '3' at 2");
  EXPECT_EQ(error_of("(2+3"), "missing ')'");
  EXPECT_EQ(error_of("2+3)"), "unexpected character ')' at 3");
  EXPECT_EQ(error_of("2+"), "unexpected end of expression");
  EXPECT_EQ(error_of(""), "empty expression");
  EXPECT_EQ(error_of("   "), "empty expression");
  EXPECT_EQ(error_of("2*\x01"), "unexpected character '\\x01' at 2");
  EXPECT_EQ(error_of("__import__('os')"), "unexpected character '_' at 0");
}

TEST(expression, huge_numbers_and_overflow_are_refused) {
  EXPECT_EQ(error_of("99999999999999999999"), "number too large at 0");
  EXPECT_EQ(value_of("9223372036854775807"), (rational{INT64_MAX, 1}));
  EXPECT_EQ(error_of("9223372036854775807+1"), "overflow");
  EXPECT_EQ(error_of("3037000500*3037000500"), "overflow");
  EXPECT_EQ(error_of("-9223372036854775807-1"), "overflow") << "INT64_MIN is refused, not mishandled";
  EXPECT_EQ(error_of("1/9223372036854775807+1/9223372036854775806"), "overflow");
  // Cross-reduction keeps products that fit from overflowing midway.
  EXPECT_EQ(value_of("(3037000500/7)*(7/3037000500)"), (rational{1, 1}));
}

TEST(expression, nesting_and_length_are_bounded) {
  std::string deep = std::string(32, '(') + "1" + std::string(32, ')');
  EXPECT_EQ(value_of(deep), (rational{1, 1}));
  std::string deeper = std::string(33, '(') + "1" + std::string(33, ')');
  EXPECT_EQ(error_of(deeper), "nesting deeper than 32");
  EXPECT_EQ(error_of(std::string(100000, '(')), "expression longer than 1000 characters");
  expression_limits l;
  l.max_length = 1 << 20;
  EXPECT_EQ(error_of(std::string(100000, '('), l), "nesting deeper than 32") << "no stack overflow";
  EXPECT_EQ(error_of(std::string(100000, '-') + "1", l), "nesting deeper than 32");
  std::string long_sum = "1";
  for (int i = 0; i < 400; ++i) long_sum += "+1";
  EXPECT_EQ(value_of(long_sum), (rational{401, 1}));
}

TEST(expression, unary_minus_can_be_turned_off) {
  expression_limits l;
  l.allow_unary_minus = false;
  EXPECT_EQ(error_of("-5+10", l), "unexpected character '-' at 0");
  EXPECT_EQ(error_of("3*(-5)", l), "unexpected character '-' at 3");
  EXPECT_TRUE(evaluate_expression("10-5", l).ok);
}

TEST(parse_rational, reads_integers_and_fractions_only) {
  EXPECT_EQ(parse_rational("42"), (rational{42, 1}));
  EXPECT_EQ(parse_rational(" -12 \n"), (rational{-12, 1}));
  EXPECT_EQ(parse_rational("+3"), (rational{3, 1}));
  EXPECT_EQ(parse_rational("14/4"), (rational{7, 2}));
  EXPECT_FALSE(parse_rational("12*7"));
  EXPECT_FALSE(parse_rational("1/0"));
  EXPECT_FALSE(parse_rational(""));
  EXPECT_FALSE(parse_rational("4.0"));
  EXPECT_FALSE(parse_rational("1234567890123456789012"));
  EXPECT_FALSE(parse_rational("--1"));
}

}  // namespace
}  // namespace troupe
