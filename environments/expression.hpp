// The one arithmetic-expression evaluator of the environments: countdown checks the
// policy's equation with it, the calculator tool answers with it, and the calculator's
// task generator computes its answers with it.
//
// Grammar (whitespace anywhere between tokens):
//   expr   := term (('+' | '-') term)*
//   term   := unary (('*' | '/') unary)*
//   unary  := '-' unary | primary            (only when allow_unary_minus)
//   primary:= INTEGER | '(' expr ')'
//   INTEGER:= [0-9]+                          (no decimals, no exponents)
//
// Arithmetic is exact: values are rationals of two int64 (numerator, denominator > 0,
// in lowest terms), so 7/2*2 is 7 and nothing rounds. Integer literals are plain
// numbers, so "3 / 4" is the value 3/4.
//
// It never throws on bad text and never runs unbounded: it is a recursive-descent
// parser over at most `max_length` characters with at most `max_depth` nested
// parentheses / unary minuses, and every operation checks for int64 overflow. Bad input
// comes back as ok = false with a short reason (see expression_result::error).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace troupe {

// An exact rational number: num / den, den > 0, gcd(|num|, den) == 1.
struct rational {
  std::int64_t num = 0;
  std::int64_t den = 1;

  bool is_integer() const { return den == 1; }
  // "84", "-7/2": the text the calculator shows and answers are compared in.
  std::string to_string() const;
  friend bool operator==(const rational& a, const rational& b) { return a.num == b.num && a.den == b.den; }
  friend bool operator!=(const rational& a, const rational& b) { return !(a == b); }
};

// Parses a number as a final answer: "-12", "7/2", "+3", " 4 " (surrounding spaces
// allowed; no operators besides one '/'). nullopt for anything else.
std::optional<rational> parse_rational(std::string_view text);

struct expression_limits {
  std::size_t max_length = 1000;  // characters of the whole expression
  int max_depth = 32;             // nested parentheses and unary minuses
  bool allow_unary_minus = true;  // countdown turns it off: "-5" would be a new number
};

struct expression_result {
  bool ok = false;
  rational value;                      // when ok
  // When !ok: what is wrong and where, e.g. "division by zero", "unexpected character
  // 'x' at 3", "number too large at 0", "overflow", "nesting deeper than 32",
  // "expression longer than 1000 characters", "empty expression".
  std::string error;
  // The integer literals in the order they appear (also filled when a later error
  // stops the parse, up to that point). Countdown checks these against its numbers.
  std::vector<std::int64_t> literals;
};

expression_result evaluate_expression(std::string_view text, const expression_limits& limits = {});

}  // namespace troupe
