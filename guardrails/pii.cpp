#include "guardrails/pii.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <map>

#include "guardrails/text_match.hpp"

namespace troupe {

namespace {

struct kind_info {
  pii_kind kind;
  const char* name;
  const char* placeholder;
  const char* pattern;  // candidates; the checks below decide
};

// Candidate patterns are deliberately loose: the checks reject look-alikes, and the
// boundary test rejects pieces of longer tokens.
const std::array<kind_info, 7> kinds_table = {{
  {pii_kind::email, "email", "[EMAIL]", R"([A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24})"},
  {pii_kind::phone, "phone", "[PHONE]",
   R"(\+\d{1,3}(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,5})){2,7}|\(\d{3}\) ?\d{3}[ .\-]\d{4}|\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4})"},
  {pii_kind::credit_card, "credit_card", "[CREDIT_CARD]", R"(\d(?:[ \-]?\d){12,18})"},
  {pii_kind::iban, "iban", "[IBAN]", R"([A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})"},
  {pii_kind::ipv4, "ipv4", "[IP_ADDRESS]", R"(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})"},
  {pii_kind::ipv6, "ipv6", "[IP_ADDRESS]", R"([0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f.:]*)"},
  {pii_kind::ssn, "ssn", "[SSN]", R"(\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})"},
}};

const kind_info& info(pii_kind k) { return kinds_table[static_cast<std::size_t>(k)]; }

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; }
bool digit(char c) { return c >= '0' && c <= '9'; }

// Not a piece of a longer token: no word character next to it, and no '.' or '-' that
// joins it to one (1.2.3.4.5, INV-2024-...).
bool starts_clean(std::string_view t, std::size_t b) {
  if (b == 0) return true;
  char p = t[b - 1];
  return !word_char(p) && !((p == '.' || p == '-') && b > 1 && word_char(t[b - 2]));
}

bool ends_clean(std::string_view t, std::size_t e) {
  if (e >= t.size()) return true;
  char n = t[e];
  return !word_char(n) && !((n == '.' || n == '-') && e + 1 < t.size() && word_char(t[e + 1]));
}

bool isolated(std::string_view t, std::size_t b, std::size_t e) { return starts_clean(t, b) && ends_clean(t, e); }

std::string digits_of(std::string_view s) {
  std::string out;
  for (char c : s)
    if (digit(c)) out += c;
  return out;
}

bool email_ok(std::string_view t, std::size_t b, std::size_t e) {
  if (!isolated(t, b, e)) return false;
  auto s = t.substr(b, e - b);
  auto at = s.find('@');
  auto local = s.substr(0, at);
  if (local.empty() || local.size() > 64 || local.front() == '.' || local.back() == '.') return false;
  // name@2x.png is an image, not an address.
  std::string tld(s.substr(s.rfind('.') + 1));
  std::transform(tld.begin(), tld.end(), tld.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* ext : {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tiff"})
    if (tld == ext) return false;
  return true;
}

bool phone_ok(std::string_view t, std::size_t b, std::size_t e) {
  if (!isolated(t, b, e)) return false;
  auto n = digits_of(t.substr(b, e - b)).size();
  return t[b] == '+' ? n >= 8 && n <= 15 : n == 10;
}

// 2-6: the issuer prefixes of cards in use (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4,
// Discover/UnionPay 6).
bool card_digits_ok(const std::string& d) {
  return d.size() >= 13 && d.size() <= 19 && d[0] >= '2' && d[0] <= '6' && luhn_valid(d);
}

// Written with separators, a card number is grouped as printed on cards: fours (the
// last group may be shorter), or 4-6-5 / 4-6-4 (Amex, Diners). Other groupings are
// reference numbers ("2024-000123-7781").
bool card_grouping_ok(std::string_view s) {
  std::vector<std::size_t> groups{0};
  for (char c : s) {
    if (digit(c)) ++groups.back();
    else groups.push_back(0);
  }
  if (groups.size() == 1) return true;
  if (groups.size() == 3 && groups[0] == 4 && groups[1] == 6 && (groups[2] == 5 || groups[2] == 4)) return s[0] == '3';
  for (std::size_t i = 0; i + 1 < groups.size(); ++i)
    if (groups[i] != 4) return false;
  return groups.back() >= 1 && groups.back() <= 4;
}

// A greedy candidate may have swallowed a following number ("4111 1111 1111 1111 2"):
// try the whole candidate, then shorter ones that end before a space.
bool card_ok(std::string_view t, std::size_t b, std::size_t& e) {
  if (!starts_clean(t, b)) return false;
  for (std::size_t end = e; end > b; --end) {
    const bool whole = end == e;
    if (whole ? !ends_clean(t, end) : t[end] != ' ') continue;
    if (card_grouping_ok(t.substr(b, end - b)) && card_digits_ok(digits_of(t.substr(b, end - b)))) {
      e = end;
      return true;
    }
  }
  return false;
}

const std::map<std::string, std::size_t>& iban_lengths() {
  static const std::map<std::string, std::size_t> m = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22}, {"BH", 22},
    {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28},
    {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23},
    {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
    {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18},
    {"NO", 15}, {"PK", 24}, {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24},
    {"SC", 31}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}};
  return m;
}

// Takes exactly the country's length of characters (single spaces allowed between
// them), so a following capitalized word is not swallowed.
bool iban_ok(std::string_view t, std::size_t b, std::size_t& e) {
  if (b > 0 && word_char(t[b - 1])) return false;
  auto it = iban_lengths().find(std::string(t.substr(b, 2)));
  if (it == iban_lengths().end()) return false;
  std::size_t n = 0, i = b;
  while (i < e && n < it->second) {
    if (t[i] == ' ') {
      ++i;
      continue;
    }
    ++n, ++i;
  }
  if (n != it->second) return false;
  if (i < t.size() && word_char(t[i])) return false;
  if (!iban_valid(t.substr(b, i - b))) return false;
  e = i;
  return true;
}

bool ipv4_ok(std::string_view t, std::size_t b, std::size_t e) {
  if (!isolated(t, b, e)) return false;
  std::size_t start = b;
  for (int part = 0; part < 4; ++part) {
    std::size_t end = start;
    while (end < e && digit(t[end])) ++end;
    auto octet = t.substr(start, end - start);
    if (octet.size() > 1 && octet[0] == '0') return false;  // 01.02.03.04 is not written as an address
    if (std::stoi(std::string(octet)) > 255) return false;
    start = end + 1;
  }
  return true;
}

bool ipv6_ok(std::string_view t, std::size_t b, std::size_t& e) {
  while (e > b && (t[e - 1] == '.' || t[e - 1] == ':')) {
    if (t[e - 1] == ':' && e - b >= 2 && t[e - 2] == ':') break;  // "fe80::" ends in "::"
    --e;
  }
  if (b > 0 && (word_char(t[b - 1]) || t[b - 1] == ':')) return false;
  if (e < t.size() && word_char(t[e])) return false;
  std::string s(t.substr(b, e - b));
  if (std::count(s.begin(), s.end(), ':') < 7 && s.find("::") == std::string::npos) return false;
  // A decimal digit, as real addresses have (fe80::1, 2001:db8::): without it, a::b or
  // dead::beef is more likely a C++ scope than an address.
  if (std::none_of(s.begin(), s.end(), [](char c) { return digit(c); })) return false;
  in6_addr addr{};
  return inet_pton(AF_INET6, s.c_str(), &addr) == 1;
}

bool candidate_ok(pii_kind k, std::string_view t, std::size_t b, std::size_t& e) {
  switch (k) {
    case pii_kind::email: return email_ok(t, b, e);
    case pii_kind::phone: return phone_ok(t, b, e);
    case pii_kind::credit_card: return card_ok(t, b, e);
    case pii_kind::iban: return iban_ok(t, b, e);
    case pii_kind::ipv4: return ipv4_ok(t, b, e);
    case pii_kind::ipv6: return ipv6_ok(t, b, e);
    case pii_kind::ssn: return isolated(t, b, e) && ssn_valid(t.substr(b, e - b));
  }
  return false;
}

const RE2& candidate_regex(pii_kind k) {
  static const std::array<std::unique_ptr<RE2>, 7> res = [] {
    std::array<std::unique_ptr<RE2>, 7> out;
    for (const auto& ki : kinds_table) out[static_cast<std::size_t>(ki.kind)] = std::make_unique<RE2>(ki.pattern);
    return out;
  }();
  return *res[static_cast<std::size_t>(k)];
}

}  // namespace

const char* to_string(pii_kind k) { return info(k).name; }
const char* placeholder(pii_kind k) { return info(k).placeholder; }

bool parse_pii_kind(const std::string& s, pii_kind& out) {
  for (const auto& ki : kinds_table)
    if (s == ki.name) {
      out = ki.kind;
      return true;
    }
  return false;
}

const std::vector<pii_kind>& all_pii_kinds() {
  static const std::vector<pii_kind> all = [] {
    std::vector<pii_kind> v;
    for (const auto& ki : kinds_table) v.push_back(ki.kind);
    return v;
  }();
  return all;
}

std::vector<std::string> all_pii_kind_names() {
  std::vector<std::string> out;
  for (const auto& ki : kinds_table) out.emplace_back(ki.name);
  return out;
}

bool luhn_valid(std::string_view s) {
  int sum = 0, n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (*it == ' ' || *it == '-') continue;
    if (!digit(*it)) return false;
    int d = *it - '0';
    if (n++ % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return n > 1 && sum % 10 == 0;
}

bool iban_valid(std::string_view s) {
  std::string c;
  for (char x : s)
    if (x != ' ') c += x;
  if (c.size() < 15 || c.size() > 34) return false;
  if (!std::isupper(static_cast<unsigned char>(c[0])) || !std::isupper(static_cast<unsigned char>(c[1])) ||
      !digit(c[2]) || !digit(c[3]))
    return false;
  // ISO 13616: move the first four characters to the end, letters become 10..35, and
  // the number mod 97 must be 1 (computed piecewise, it has up to 68 digits).
  std::string r = c.substr(4) + c.substr(0, 4);
  int mod = 0;
  for (char x : r) {
    if (digit(x)) mod = (mod * 10 + (x - '0')) % 97;
    else if (std::isupper(static_cast<unsigned char>(x))) mod = (mod * 100 + (x - 'A' + 10)) % 97;
    else return false;
  }
  return mod == 1;
}

bool ssn_valid(std::string_view s) {
  auto d = digits_of(s);
  if (d.size() != 9) return false;
  int area = std::stoi(d.substr(0, 3)), group = std::stoi(d.substr(3, 2)), serial = std::stoi(d.substr(5));
  if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0) return false;
  // Published in advertising and wallets, never anyone's.
  return d != "078051120" && d != "219099999";
}

std::vector<pii_match> find_pii(std::string_view text, const std::vector<pii_kind>& kinds, const stop_flag& stop) {
  std::vector<pii_match> found;
  for (auto k : kinds) {
    for_each_match(candidate_regex(k), text, stop, [&](std::size_t b, std::size_t e) {
      if (candidate_ok(k, text, b, e)) found.push_back({k, b, e});
      return true;
    });
  }
  std::sort(found.begin(), found.end(), [](const pii_match& a, const pii_match& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
  });
  std::vector<pii_match> out;
  for (const auto& m : found)
    if (out.empty() || m.begin >= out.back().end) out.push_back(m);
  return out;
}

}  // namespace troupe
