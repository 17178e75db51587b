// Personal data in text: finding it and telling real identifiers from look-alikes.
// Each kind has a candidate pattern (RE2) and a check that the candidate is a real one:
//   email        local@domain.tld; a dotted domain with a letter TLD (not user@localhost)
//   phone        +CC ... or (NNN) NNN-NNNN / NNN-NNN-NNNN / NNN.NNN.NNNN; 7-15 digits
//   credit_card  13-19 digits, optionally grouped by spaces or dashes as cards print them
//                (fours, or 4-6-5 / 4-6-4), an issuer prefix (2-6), a valid Luhn checksum
//   iban         two letters, two check digits, the country's length (when known), and
//                mod-97 = 1 (ISO 13616)
//   ipv4         four octets 0-255; not part of a longer dotted run (1.2.3.4.5), not v1.2.3.4
//   ipv6         what inet_pton accepts, with at least one "::" or seven colons, and a
//                decimal digit (a::b is a C++ scope)
//   ssn          US SSN NNN-NN-NNNN (or spaces), without the never-issued ranges: area
//                000, 666, 900-999; group 00; serial 0000
// A match must not touch a letter, digit or underscore on either side, nor a dot or dash
// that joins it to one (so order numbers and version strings are not cut into PII).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "guardrails/rail.hpp"

namespace troupe {

enum class pii_kind { email, phone, credit_card, iban, ipv4, ipv6, ssn };
const char* to_string(pii_kind k);                 // "email", ...
const char* placeholder(pii_kind k);               // "[EMAIL]", ...
bool parse_pii_kind(const std::string& s, pii_kind& out);
const std::vector<pii_kind>& all_pii_kinds();
std::vector<std::string> all_pii_kind_names();

struct pii_match {
  pii_kind kind;
  std::size_t begin = 0, end = 0;  // bytes, [begin, end)
};

// Every match of `kinds` in `text`, by position; where two overlap the earlier, then the
// longer, wins. Returns early (what it found so far) once `stop` is raised.
std::vector<pii_match> find_pii(std::string_view text, const std::vector<pii_kind>& kinds, const stop_flag& stop);

// The checks, exposed for tests. Separators (spaces, dashes) are ignored.
bool luhn_valid(std::string_view digits);
bool iban_valid(std::string_view iban);
bool ssn_valid(std::string_view ssn);

}  // namespace troupe
