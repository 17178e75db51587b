#include <gtest/gtest.h>

#include "guardrails/pii.hpp"

namespace troupe {
namespace {

const stop_flag never{false};

// The kinds found in `text`, in order, as names.
std::vector<std::string> kinds_in(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& m : find_pii(text, all_pii_kinds(), never)) out.emplace_back(to_string(m.kind));
  return out;
}

using names = std::vector<std::string>;

TEST(pii_checks, luhn_accepts_valid_numbers_and_rejects_a_changed_digit) {
  EXPECT_TRUE(luhn_valid("4111111111111111"));
  EXPECT_TRUE(luhn_valid("4111 1111 1111 1111"));
  EXPECT_TRUE(luhn_valid("378282246310005"));
  EXPECT_FALSE(luhn_valid("4111111111111112"));
  EXPECT_FALSE(luhn_valid("1234567890123456"));
  EXPECT_FALSE(luhn_valid("41x1"));
}

TEST(pii_checks, iban_needs_mod_97_equal_to_one) {
  EXPECT_TRUE(iban_valid("GB82 WEST 1234 5698 7654 32"));
  EXPECT_TRUE(iban_valid("DE89370400440532013000"));
  EXPECT_FALSE(iban_valid("GB83 WEST 1234 5698 7654 32"));
  EXPECT_FALSE(iban_valid("DE89370400440532013001"));
  EXPECT_FALSE(iban_valid("DE8937040044"));  // too short
}

TEST(pii_checks, ssn_excludes_the_never_issued_ranges) {
  EXPECT_TRUE(ssn_valid("536-22-1943"));
  for (const char* s : {"000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567", "123-45-0000",
                        "078-05-1120"})
    EXPECT_FALSE(ssn_valid(s)) << s;
}

TEST(find_pii, finds_each_kind_with_its_span) {
  const std::string t = "mail ann@example.com now";
  auto m = find_pii(t, all_pii_kinds(), never);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].kind, pii_kind::email);
  EXPECT_EQ(t.substr(m[0].begin, m[0].end - m[0].begin), "ann@example.com");
  EXPECT_EQ(kinds_in("call (415) 555-0132 or +44 20 7946 0958"), (names{"phone", "phone"}));
  EXPECT_EQ(kinds_in("card 4111 1111 1111 1111 and 378282246310005"), (names{"credit_card", "credit_card"}));
  EXPECT_EQ(kinds_in("IBAN GB82 WEST 1234 5698 7654 32 Thanks"), (names{"iban"}));
  EXPECT_EQ(kinds_in("hosts 192.168.1.23 and fe80::1ff:fe23:4567:890a"), (names{"ipv4", "ipv6"}));
  EXPECT_EQ(kinds_in("ssn 536-22-1943."), (names{"ssn"}));
}

TEST(find_pii, iban_stops_at_its_country_length_before_a_capitalized_word) {
  const std::string t = "DE89 3704 0044 0532 0130 00 IS MINE";
  auto m = find_pii(t, {pii_kind::iban}, never);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(t.substr(m[0].begin, m[0].end - m[0].begin), "DE89 3704 0044 0532 0130 00");
}

TEST(find_pii, card_number_followed_by_another_number_is_still_found) {
  const std::string t = "4111 1111 1111 1111 2 times";
  auto m = find_pii(t, {pii_kind::credit_card}, never);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].end, 19u);
}

TEST(find_pii, ignores_look_alikes) {
  for (const char* t : {
         "order 1234567890123456",             // fails Luhn
         "4111111111111112",                   // fails Luhn
         "INV-2024-000123-7781",               // reference number, not card grouping
         "GB83 WEST 1234 5698 7654 32",        // bad IBAN checksum
         "upgrade to 1.2.3.4.5",               // version, not an address
         "we run v1.2.3.4",                    // version
         "256.1.1.1",                          // octet out of range
         "git clone user@localhost:repo.git",  // no dotted domain
         "@dataclass",                         // decorator
         "icon@2x.png",                        // image name
         "std::vector<int> and a::b",          // C++ scopes
         "at 12:30:45",                        // a time
         "MAC 00:1A:2B:3C:4D:5E",              // hardware address
         "666-45-1234",                        // never-issued SSN area
         "ext 555-01",                         // too few digits for a phone
       })
    EXPECT_TRUE(kinds_in(t).empty()) << t << ": " << (kinds_in(t).empty() ? "" : kinds_in(t)[0]);
}

TEST(find_pii, overlapping_candidates_keep_the_earlier_and_longer) {
  // The SSN-shaped and card-shaped readings overlap; one span comes back.
  auto m = find_pii("4111-1111-1111-1111", all_pii_kinds(), never);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].kind, pii_kind::credit_card);
}

}  // namespace
}  // namespace troupe
