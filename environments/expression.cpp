#include "environments/expression.hpp"

#include <cctype>
#include <numeric>

#include "environments/tags.hpp"

namespace troupe {

namespace {

// An arithmetic failure inside the parser; carried out as a value, never thrown past
// evaluate_expression.
struct eval_failure {
  std::string what;
};

std::int64_t checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw eval_failure{"overflow"};
  return r;
}
std::int64_t checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw eval_failure{"overflow"};
  return r;
}

// Lowest terms with a positive denominator. INT64_MIN cannot be negated, so it is
// refused as an overflow rather than mishandled.
rational normalized(std::int64_t num, std::int64_t den) {
  if (den == 0) throw eval_failure{"division by zero"};
  if (num == INT64_MIN || den == INT64_MIN) throw eval_failure{"overflow"};
  if (den < 0) num = -num, den = -den;
  const std::int64_t g = std::gcd(num < 0 ? -num : num, den);
  return {num / g, den / g};
}

rational add(rational a, rational b) {
  const std::int64_t g = std::gcd(a.den, b.den);
  return normalized(checked_add(checked_mul(a.num, b.den / g), checked_mul(b.num, a.den / g)), checked_mul(a.den, b.den / g));
}
rational negate(rational a) {
  if (a.num == INT64_MIN) throw eval_failure{"overflow"};
  return {-a.num, a.den};
}
rational mul(rational a, rational b) {
  // Cross-reduce first so that products that fit in lowest terms do not overflow.
  const std::int64_t g1 = std::gcd(a.num < 0 ? -a.num : a.num, b.den), g2 = std::gcd(b.num < 0 ? -b.num : b.num, a.den);
  const std::int64_t d1 = g1 == 0 ? 1 : g1, d2 = g2 == 0 ? 1 : g2;
  return normalized(checked_mul(a.num / d1, b.num / d2), checked_mul(a.den / d2, b.den / d1));
}
rational div(rational a, rational b) {
  if (b.num == 0) throw eval_failure{"division by zero"};
  return mul(a, normalized(b.den, b.num));
}

class parser {
 public:
  parser(std::string_view s, const expression_limits& l, std::vector<std::int64_t>& literals)
      : s_(s), limits_(l), literals_(literals) {}

  rational parse() {
    skip_space();
    if (pos_ == s_.size()) throw eval_failure{"empty expression"};
    rational v = expr();
    skip_space();
    if (pos_ != s_.size()) unexpected();
    return v;
  }

 private:
  rational expr() {
    rational v = term();
    for (;;) {
      skip_space();
      if (peek('+')) ++pos_, v = add(v, term());
      else if (peek('-')) ++pos_, v = add(v, negate(term()));
      else return v;
    }
  }
  rational term() {
    rational v = unary();
    for (;;) {
      skip_space();
      if (peek('*')) ++pos_, v = mul(v, unary());
      else if (peek('/')) ++pos_, v = div(v, unary());
      else return v;
    }
  }
  rational unary() {
    skip_space();
    if (peek('-') && limits_.allow_unary_minus) {
      ++pos_;
      depth_guard g(*this);
      return negate(unary());
    }
    return primary();
  }
  rational primary() {
    skip_space();
    if (pos_ == s_.size()) throw eval_failure{"unexpected end of expression"};
    if (peek('(')) {
      ++pos_;
      depth_guard g(*this);
      rational v = expr();
      skip_space();
      if (!peek(')')) {
        if (pos_ == s_.size()) throw eval_failure{"missing ')'"};
        unexpected();
      }
      ++pos_;
      return v;
    }
    if (!std::isdigit(static_cast<unsigned char>(s_[pos_]))) unexpected();
    const std::size_t start = pos_;
    std::int64_t v = 0;
    while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s_[pos_] - '0', &v))
        throw eval_failure{"number too large at " + std::to_string(start)};
      ++pos_;
    }
    literals_.push_back(v);
    return {v, 1};
  }

  struct depth_guard {
    parser& p;
    explicit depth_guard(parser& q) : p(q) {
      if (++p.depth_ > p.limits_.max_depth) throw eval_failure{"nesting deeper than " + std::to_string(p.limits_.max_depth)};
    }
    ~depth_guard() { --p.depth_; }
  };

  bool peek(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  [[noreturn]] void unexpected() const {
    const unsigned char c = static_cast<unsigned char>(s_[pos_]);
    std::string shown = c >= 0x20 && c < 0x7f ? std::string(1, static_cast<char>(c)) : "\\x" + hex(c);
    throw eval_failure{"unexpected character '" + shown + "' at " + std::to_string(pos_)};
  }
  static std::string hex(unsigned char c) {
    const char* d = "0123456789abcdef";
    return {d[c >> 4], d[c & 15]};
  }

  std::string_view s_;
  const expression_limits& limits_;
  std::vector<std::int64_t>& literals_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

std::string rational::to_string() const {
  return den == 1 ? std::to_string(num) : std::to_string(num) + "/" + std::to_string(den);
}

std::optional<rational> parse_rational(std::string_view text) {
  text = trim(text);
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) negative = text.front() == '-', text.remove_prefix(1);
  auto integer = [](std::string_view d) -> std::optional<std::int64_t> {
    if (d.empty() || d.size() > 18) return std::nullopt;  // 18 digits always fit in int64
    std::int64_t v = 0;
    for (char c : d) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  };
  const auto slash = text.find('/');
  auto num = integer(text.substr(0, slash));
  auto den = slash == std::string_view::npos ? std::optional<std::int64_t>(1) : integer(text.substr(slash + 1));
  if (!num || !den || *den == 0) return std::nullopt;
  return normalized(negative ? -*num : *num, *den);
}

expression_result evaluate_expression(std::string_view text, const expression_limits& limits) {
  expression_result r;
  if (text.size() > limits.max_length) {
    r.error = "expression longer than " + std::to_string(limits.max_length) + " characters";
    return r;
  }
  try {
    r.value = parser(text, limits, r.literals).parse();
    r.ok = true;
  } catch (const eval_failure& f) {
    r.error = f.what;
  }
  return r;
}

}  // namespace troupe
