#include "policies/tokenizers/unicode_text.hpp"

#include <algorithm>
#include <vector>

namespace troupe {

namespace {

constexpr char32_t replacement_char = 0xFFFD;

// Hangul syllables compose and decompose by formula (Unicode 3.12).
constexpr char32_t hangul_s_base = 0xAC00, hangul_l_base = 0x1100, hangul_v_base = 0x1161,
                   hangul_t_base = 0x11A7;
constexpr char32_t hangul_l_count = 19, hangul_v_count = 21, hangul_t_count = 28;
constexpr char32_t hangul_n_count = hangul_v_count * hangul_t_count;
constexpr char32_t hangul_s_count = hangul_l_count * hangul_n_count;

std::uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  using unicode_tables::ccc_range;
  const ccc_range* begin = unicode_tables::ccc_ranges;
  const ccc_range* end = begin + unicode_tables::ccc_range_count;
  const ccc_range* it =
      std::upper_bound(begin, end, cp, [](char32_t c, const ccc_range& r) { return c < r.first; });
  if (it == begin) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

void decompose(char32_t cp, std::u32string& out) {
  if (cp >= hangul_s_base && cp < hangul_s_base + hangul_s_count) {
    const char32_t s = cp - hangul_s_base;
    out.push_back(hangul_l_base + s / hangul_n_count);
    out.push_back(hangul_v_base + (s % hangul_n_count) / hangul_t_count);
    if (s % hangul_t_count != 0) out.push_back(hangul_t_base + s % hangul_t_count);
    return;
  }
  using unicode_tables::decomposition;
  const decomposition* begin = unicode_tables::decompositions;
  const decomposition* end = begin + unicode_tables::decomposition_count;
  const decomposition* it =
      std::lower_bound(begin, end, cp, [](const decomposition& d, char32_t c) { return d.code_point < c; });
  if (it != end && it->code_point == cp) {
    out.append(unicode_tables::decomposition_data + it->offset, it->length);
  } else {
    out.push_back(cp);
  }
}

// The primary composite of (first, second), or 0.
char32_t compose(char32_t first, char32_t second) {
  if (first >= hangul_l_base && first < hangul_l_base + hangul_l_count && second >= hangul_v_base &&
      second < hangul_v_base + hangul_v_count) {
    return hangul_s_base + ((first - hangul_l_base) * hangul_v_count + (second - hangul_v_base)) * hangul_t_count;
  }
  if (first >= hangul_s_base && first < hangul_s_base + hangul_s_count && (first - hangul_s_base) % hangul_t_count == 0 &&
      second > hangul_t_base && second < hangul_t_base + hangul_t_count) {
    return first + (second - hangul_t_base);
  }
  using unicode_tables::composition;
  const composition* begin = unicode_tables::compositions;
  const composition* end = begin + unicode_tables::composition_count;
  const composition* it = std::lower_bound(begin, end, std::make_pair(first, second),
                                           [](const composition& c, const std::pair<char32_t, char32_t>& key) {
                                             return c.first != key.first ? c.first < key.first : c.second < key.second;
                                           });
  return it != end && it->first == first && it->second == second ? it->composite : 0;
}

}  // namespace

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t next_utf8(std::string_view text, std::size_t& pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  // Continuation bytes needed, and the allowed range of the first one (Table 3-7).
  int need = 0;
  unsigned char low = 0x80, high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 1;
  } else if (lead == 0xE0) {
    need = 2;
    low = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    need = 2;
  } else if (lead == 0xED) {
    need = 2;
    high = 0x9F;
  } else if (lead == 0xF0) {
    need = 3;
    low = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    need = 3;
  } else if (lead == 0xF4) {
    need = 3;
    high = 0x8F;
  } else {
    ++pos;
    return replacement_char;
  }
  char32_t cp = lead & (0x3F >> need);
  std::size_t i = pos + 1;
  for (int k = 0; k < need; ++k, ++i) {
    if (i >= text.size() || byte(i) < low || byte(i) > high) {
      pos = i;
      return replacement_char;
    }
    cp = (cp << 6) | (byte(i) & 0x3F);
    low = 0x80;
    high = 0xBF;
  }
  pos = i;
  return cp;
}

bool utf8_is_valid(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const std::size_t start = pos;
    if (next_utf8(text, pos) == replacement_char &&
        !(pos - start == 3 && text.compare(start, 3, "\xEF\xBF\xBD") == 0)) {
      return false;
    }
  }
  return true;
}

std::string utf8_repair(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = pos;
    const char32_t cp = next_utf8(text, pos);
    if (cp == replacement_char) {
      append_utf8(out, cp);
    } else {
      out.append(text.substr(start, pos - start));
    }
  }
  return out;
}

bool is_unicode_white_space(char32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string nfc_normalize(std::string_view text) {
  // Text below U+0300 is already NFC, whatever follows it.
  std::size_t first = 0;
  while (first < text.size() && static_cast<unsigned char>(text[first]) < 0xCC) ++first;
  if (first == text.size()) return std::string(text);
  // Restart one character earlier (a starter, being below U+0300) so that a combining
  // mark can compose with it.
  if (first > 0) {
    --first;
    while (first > 0 && (static_cast<unsigned char>(text[first]) & 0xC0) == 0x80) --first;
  }

  std::u32string chars;
  chars.reserve(text.size() - first);
  for (std::size_t pos = first; pos < text.size();) decompose(next_utf8(text, pos), chars);

  // Canonical ordering: stable sort each run of non-starters by combining class.
  for (std::size_t i = 0; i < chars.size();) {
    if (combining_class(chars[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < chars.size() && combining_class(chars[j]) != 0) ++j;
    std::stable_sort(chars.begin() + static_cast<std::ptrdiff_t>(i), chars.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }

  // Canonical composition.
  std::u32string composed;
  composed.reserve(chars.size());
  std::ptrdiff_t starter = -1;
  int last_class = -1;  // class of the last character kept after the starter; -1: none
  for (const char32_t c : chars) {
    const int cls = combining_class(c);
    if (starter >= 0 && (last_class == -1 || last_class < cls)) {
      if (const char32_t comp = compose(composed[static_cast<std::size_t>(starter)], c)) {
        composed[static_cast<std::size_t>(starter)] = comp;
        continue;
      }
    }
    if (cls == 0) {
      starter = static_cast<std::ptrdiff_t>(composed.size());
      last_class = -1;
    } else {
      last_class = cls;
    }
    composed.push_back(c);
  }

  std::string out(text.substr(0, first));
  out.reserve(text.size() + 8);
  for (const char32_t c : composed) append_utf8(out, c);
  return out;
}

}  // namespace troupe
