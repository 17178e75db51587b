#include "policies/tokenizers/bpe_tokenizer.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include "core/error.hpp"
#include "policies/tokenizers/unicode_text.hpp"

namespace troupe {

namespace {

using json = nlohmann::json;

// The pattern ByteLevel(use_regex=true) splits with.
constexpr const char* gpt2_pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Oniguruma's \s: the White_Space property (checked against Hugging Face's Split).
constexpr const char* white_space_class_body =
    R"(\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Ids are bounded so that a hostile file cannot make us allocate gigabytes.
constexpr std::int64_t max_token_id = (std::int64_t{1} << 24) - 1;
constexpr std::int64_t max_id_gap = 65536;
constexpr std::size_t cache_max_key = 256;
constexpr std::size_t cache_max_entries = 1 << 16;

// ---- Errors ------------------------------------------------------------------------

// A token or key as it appears in messages: quoted, control bytes escaped, shortened.
std::string quote_token(std::string_view text) {
  std::string out = "'";
  std::size_t chars = 0;
  for (const char c : text) {
    if (++chars > 60) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", byte);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

const char* json_type_name(const json& value) {
  return value.type_name();
}

// Reading a tokenizer.json: every failure names the file and the JSON path.
class json_reader {
 public:
  explicit json_reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw input_error(source_ + ": " + path + ": " + what);
  }
  [[noreturn]] void fail_file(const std::string& what) const { throw input_error(source_ + ": " + what); }

  const json& require(const json& object, const std::string& key, const std::string& path) const {
    const auto it = object.find(key);
    if (it == object.end()) fail(path.empty() ? key : path + "." + key, "missing");
    return *it;
  }
  const json& require_object(const json& value, const std::string& path) const {
    if (!value.is_object()) fail(path, std::string("expected an object, found ") + json_type_name(value));
    return value;
  }
  const std::string& require_string(const json& value, const std::string& path) const {
    if (!value.is_string()) fail(path, std::string("expected a string, found ") + json_type_name(value));
    return value.get_ref<const std::string&>();
  }
  bool optional_bool(const json& object, const std::string& key, bool fallback, const std::string& path) const {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail(path + "." + key, std::string("expected true or false, found ") + json_type_name(*it));
    return it->get<bool>();
  }
  token_id require_id(const json& value, const std::string& path) const {
    if (!value.is_number_integer()) fail(path, std::string("expected an integer id, found ") + json_type_name(value));
    const bool in_range = value.is_number_unsigned()
                              ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(max_token_id)
                              : value.get<std::int64_t>() >= 0 && value.get<std::int64_t>() <= max_token_id;
    if (!in_range) fail(path, "id " + value.dump() + " is out of range [0, " + std::to_string(max_token_id) + "]");
    return static_cast<token_id>(value.get<std::int64_t>());
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

std::string key_path(const std::string& base, const std::string& key) {
  return base + "[" + quote_token(key) + "]";
}

// ---- Byte-level mapping (GPT-2's bytes_to_unicode) ----------------------------------

struct byte_level_map {
  std::array<std::string, 256> byte_to_text;  // UTF-8 of the character standing for a byte
  std::unordered_map<char32_t, unsigned char> char_to_byte;

  byte_level_map() {
    std::array<char32_t, 256> chars{};
    std::array<bool, 256> direct{};
    for (int b = '!'; b <= '~'; ++b) direct[static_cast<std::size_t>(b)] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[static_cast<std::size_t>(b)] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[static_cast<std::size_t>(b)] = true;
    char32_t next = 256;
    for (std::size_t b = 0; b < 256; ++b) chars[b] = direct[b] ? static_cast<char32_t>(b) : next++;
    for (std::size_t b = 0; b < 256; ++b) {
      append_utf8(byte_to_text[b], chars[b]);
      char_to_byte[chars[b]] = static_cast<unsigned char>(b);
    }
  }

  // The bytes a vocab token stands for. A token with a character outside the map is
  // taken as its own UTF-8, as Hugging Face's ByteLevel decoder does.
  std::string decode_token(std::string_view token) const {
    std::string out;
    std::size_t pos = 0;
    while (pos < token.size()) {
      const auto it = char_to_byte.find(next_utf8(token, pos));
      if (it == char_to_byte.end()) return std::string(token);
      out.push_back(static_cast<char>(it->second));
    }
    return out;
  }
};

const byte_level_map& byte_level() {
  static const byte_level_map map;
  return map;
}

// ---- Split patterns -----------------------------------------------------------------

std::size_t white_space_length_at(std::string_view text, std::size_t pos) {
  std::size_t next = pos;
  return is_unicode_white_space(next_utf8(text, next)) ? next - pos : 0;
}

struct split_rule {
  std::unique_ptr<RE2> regex;  // the pattern less its whitespace tail; null if nothing is left
  bool whitespace_tail = false;
  bool remove_matches = false;  // behavior "Removed" instead of "Isolated"

  // The leftmost match at or after `from`, as Oniguruma's search gives it. False if none.
  bool search(std::string_view text, std::size_t from, std::size_t& start, std::size_t& end) const {
    bool found = false;
    if (regex) {
      const re2::StringPiece piece(text.data(), text.size());
      re2::StringPiece match;
      found = regex->Match(piece, from, text.size(), RE2::ANCHOR_START, &match, 1) ||
              regex->Match(piece, from, text.size(), RE2::UNANCHORED, &match, 1);
      if (found) {
        start = static_cast<std::size_t>(match.data() - text.data());
        end = start + match.size();
      }
    }
    if (!whitespace_tail) return found;
    // `\s+(?!\S)|\s+` comes last, so it only wins where the rest matches nowhere earlier.
    const std::size_t limit = found ? start : text.size();
    for (std::size_t pos = from; pos < limit;) {
      const std::size_t len = white_space_length_at(text, pos);
      if (len == 0) {
        next_utf8(text, pos);
        continue;
      }
      start = pos;
      std::size_t run_end = pos, last = pos, chars = 0;
      while (run_end < text.size()) {
        const std::size_t l = white_space_length_at(text, run_end);
        if (l == 0) break;
        last = run_end;
        run_end += l;
        ++chars;
      }
      // Followed by a non-space: `\s+(?!\S)` backs off one character, or fails on a
      // single one and `\s+` takes it.
      end = (run_end < text.size() && chars > 1) ? last : run_end;
      return true;
    }
    return found;
  }

  // Splits `text` into pieces as Hugging Face's Split does (find_iter, then gaps).
  void split(std::string_view text, std::vector<std::string_view>& out) const {
    std::size_t prev = 0, search_from = 0;
    bool have_last_end = false;
    std::size_t last_end = 0;
    while (search_from <= text.size()) {
      std::size_t start = 0, end = 0;
      if (!search(text, search_from, start, end)) break;
      if (start == end && have_last_end && last_end == end) {
        // An empty match right after the previous match: move on one character.
        if (search_from >= text.size()) break;
        next_utf8(text, search_from);
        continue;
      }
      search_from = end;
      have_last_end = true;
      last_end = end;
      if (prev < start) out.push_back(text.substr(prev, start - prev));
      if (start < end && !remove_matches) out.push_back(text.substr(start, end - start));
      prev = end;
    }
    if (prev < text.size()) out.push_back(text.substr(prev));
  }
};

// ---- Added tokens -------------------------------------------------------------------

struct added_token {
  std::string content;
  token_id id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// Leftmost-longest matching over the added tokens (aho-corasick's LeftmostLongest).
class token_trie {
 public:
  void add(const std::string& text, int token) {
    std::size_t node = 0;
    for (const char c : text) {
      const std::uint64_t key = (static_cast<std::uint64_t>(node) << 8) | static_cast<unsigned char>(c);
      const auto it = edges_.find(key);
      if (it != edges_.end()) {
        node = it->second;
      } else {
        edges_.emplace(key, terminal_.size());
        node = terminal_.size();
        terminal_.push_back(-1);
      }
    }
    terminal_[node] = token;
    first_byte_[static_cast<unsigned char>(text[0])] = true;
  }
  bool empty() const { return terminal_.size() == 1; }

  // The longest token starting at `pos`: its index, or -1.
  int longest_at(std::string_view text, std::size_t pos, std::size_t& length) const {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) return -1;
    int best = -1;
    std::size_t node = 0;
    for (std::size_t i = pos; i < text.size(); ++i) {
      const auto it = edges_.find((static_cast<std::uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]));
      if (it == edges_.end()) break;
      node = it->second;
      if (terminal_[node] >= 0) {
        best = terminal_[node];
        length = i + 1 - pos;
      }
    }
    return best;
  }

 private:
  std::unordered_map<std::uint64_t, std::size_t> edges_;
  std::vector<int> terminal_{-1};
  std::array<bool, 256> first_byte_{};
};

// A piece of text during encoding: either plain text or an added token already found.
struct segment {
  std::string text;
  token_id id = -1;  // >= 0: an added token
};

bool is_word_char(char32_t cp) {
  if (cp < 0x80) return std::isalnum(static_cast<int>(cp)) != 0 || cp == '_';
  static const RE2 word(R"([\p{L}\p{N}\p{M}_])");
  std::string text;
  append_utf8(text, cp);
  return RE2::FullMatch(text, word);
}

char32_t last_char(std::string_view text) {
  std::size_t pos = text.size();
  while (pos > 0 && (static_cast<unsigned char>(text[pos - 1]) & 0xC0) == 0x80) --pos;
  if (pos > 0) --pos;
  return next_utf8(text, pos);
}

// ---- The tokenizer ------------------------------------------------------------------

struct merge_target {
  std::int32_t rank;
  token_id id;
};

std::uint64_t pair_key(token_id a, token_id b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}

struct token_entry {
  std::string text;   // as in the vocab or the added token's content
  std::string bytes;  // what decode() emits for a vocab token
  bool in_vocab = false;
  int added = -1;  // index into added_, or -1
};

class bpe_tokenizer final : public tokenizer {
 public:
  std::vector<token_id> encode(const std::string& text, bool parse_special) const override;
  std::string decode(const std::vector<token_id>& ids, bool skip_special) const override;
  std::size_t vocab_size() const override { return entries_.size(); }
  std::optional<token_id> token_to_id(const std::string& token) const override;
  std::string id_to_token(token_id id) const override;
  bool is_special(token_id id) const override;

  // Everything below is filled by the loader and read-only afterwards.
  std::unordered_map<std::string, token_id> vocab_;
  std::vector<token_entry> entries_;
  std::unordered_map<std::uint64_t, merge_target> merges_;
  bool ignore_merges_ = false;
  std::optional<token_id> unk_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  std::array<token_id, 256> byte_ids_{};  // the id of each byte's character, or -1

  std::vector<added_token> added_;
  std::unordered_map<std::string, token_id> added_by_content_;
  token_trie raw_trie_, normalized_trie_;

  bool nfc_ = false;
  std::vector<split_rule> splits_;              // the Split pre-tokenizers, in order
  bool add_prefix_space_ = false;               // ByteLevel's
  std::optional<split_rule> byte_level_split_;  // ByteLevel's own regex (use_regex)

 private:
  void split_added(const std::string& text, const token_trie& trie, bool parse_special,
                   std::vector<segment>& out) const;
  void encode_text(std::string_view text, std::vector<token_id>& out) const;
  void encode_word(std::string_view word, std::vector<token_id>& out) const;
  void merge_word(std::string_view word, std::vector<token_id>& out) const;

  // Pre-token -> ids. Guarded by cache_mutex_.
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<token_id>> cache_;
};

void bpe_tokenizer::split_added(const std::string& text, const token_trie& trie, bool parse_special,
                                std::vector<segment>& out) const {
  if (trie.empty()) {
    out.push_back({text, -1});
    return;
  }
  std::size_t emitted = 0;  // text before this is already in `out`
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t length = 0;
    const int index = trie.longest_at(text, pos, length);
    if (index < 0) {
      ++pos;
      continue;
    }
    const added_token& token = added_[static_cast<std::size_t>(index)];
    std::size_t start = pos, stop = pos + length;
    pos = stop;
    if (token.special && !parse_special) continue;
    if (token.single_word) {
      const bool space_before = start == 0 || !is_word_char(last_char(std::string_view(text).substr(0, start)));
      std::size_t after = stop;
      const bool space_after = stop == text.size() || !is_word_char(next_utf8(text, after));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      std::size_t new_start = start;
      while (new_start > emitted) {
        std::size_t back = new_start - 1;
        while (back > 0 && (static_cast<unsigned char>(text[back]) & 0xC0) == 0x80) --back;
        std::size_t probe = back;
        if (!is_unicode_white_space(next_utf8(text, probe))) break;
        new_start = back;
      }
      start = new_start;
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        const std::size_t l = white_space_length_at(text, stop);
        if (l == 0) break;
        stop += l;
      }
      pos = stop;
    }
    if (emitted < start) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({std::string(), token.id});
    emitted = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

std::vector<token_id> bpe_tokenizer::encode(const std::string& input, bool parse_special) const {
  std::vector<token_id> ids;
  if (input.empty()) return ids;
  const std::string repaired = utf8_is_valid(input) ? std::string() : utf8_repair(input);
  const std::string& text = repaired.empty() ? input : repaired;

  std::vector<segment> raw;
  split_added(text, raw_trie_, parse_special, raw);
  ids.reserve(text.size() / 3 + 1);
  std::vector<segment> pieces;
  for (segment& s : raw) {
    if (s.id >= 0) {
      ids.push_back(s.id);
      continue;
    }
    if (nfc_) s.text = nfc_normalize(s.text);
    pieces.clear();
    split_added(s.text, normalized_trie_, parse_special, pieces);
    for (const segment& p : pieces) {
      if (p.id >= 0) {
        ids.push_back(p.id);
      } else {
        encode_text(p.text, ids);
      }
    }
  }
  return ids;
}

void bpe_tokenizer::encode_text(std::string_view text, std::vector<token_id>& out) const {
  if (text.empty()) return;
  std::string prefixed;
  std::vector<std::string_view> current{text}, next;
  for (const split_rule& rule : splits_) {
    next.clear();
    for (const std::string_view piece : current) rule.split(piece, next);
    std::swap(current, next);
  }
  // ByteLevel comes last: a prefix space on each piece, then (use_regex) its own split.
  for (std::string_view piece : current) {
    if (add_prefix_space_ && piece[0] != ' ') {
      prefixed = " ";
      prefixed.append(piece);
      piece = prefixed;
    }
    if (!byte_level_split_) {
      encode_word(piece, out);
      continue;
    }
    next.clear();
    byte_level_split_->split(piece, next);
    for (const std::string_view word : next) encode_word(word, out);
  }
}

void bpe_tokenizer::encode_word(std::string_view word, std::vector<token_id>& out) const {
  const bool cacheable = word.size() < cache_max_key;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    const auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<token_id> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() < cache_max_entries) cache_.emplace(std::string(word), std::move(ids));
  }
}

void bpe_tokenizer::merge_word(std::string_view word, std::vector<token_id>& out) const {
  const byte_level_map& map = byte_level();
  if (ignore_merges_) {
    std::string mapped;
    for (const char c : word) mapped += map.byte_to_text[static_cast<unsigned char>(c)];
    const auto it = vocab_.find(mapped);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }

  struct symbol {
    token_id id;
    int prev, next;
    bool alive;
  };
  std::vector<symbol> symbols;
  symbols.reserve(word.size());
  bool last_was_unk = false;
  for (const char c : word) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte_ids_[byte] >= 0) {
      symbols.push_back({byte_ids_[byte], 0, 0, true});
      last_was_unk = false;
      continue;
    }
    if (byte_fallback_) {
      std::vector<token_id> fallback;
      for (const char b : map.byte_to_text[byte]) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(b));
        const auto it = vocab_.find(name);
        if (it == vocab_.end()) break;
        fallback.push_back(it->second);
      }
      if (fallback.size() == map.byte_to_text[byte].size()) {
        for (const token_id id : fallback) symbols.push_back({id, 0, 0, true});
        last_was_unk = false;
        continue;
      }
    }
    if (unk_) {
      if (!(fuse_unk_ && last_was_unk)) symbols.push_back({*unk_, 0, 0, true});
      last_was_unk = true;
    }
  }
  const int n = static_cast<int>(symbols.size());
  for (int i = 0; i < n; ++i) {
    symbols[static_cast<std::size_t>(i)].prev = i - 1;
    symbols[static_cast<std::size_t>(i)].next = i + 1 < n ? i + 1 : -1;
  }

  // Lowest rank first, then leftmost (Hugging Face's word.rs merge_all).
  struct candidate {
    std::int32_t rank;
    int pos;
    token_id id;
    bool operator>(const candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::priority_queue<candidate, std::vector<candidate>, std::greater<candidate>> queue;
  const auto find_merge = [&](int left, int right) -> const merge_target* {
    const auto it = merges_.find(pair_key(symbols[static_cast<std::size_t>(left)].id,
                                          symbols[static_cast<std::size_t>(right)].id));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (int i = 0; i + 1 < n; ++i) {
    if (const merge_target* m = find_merge(i, i + 1)) queue.push({m->rank, i, m->id});
  }
  while (!queue.empty()) {
    const candidate top = queue.top();
    queue.pop();
    symbol& left = symbols[static_cast<std::size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    const merge_target* m = find_merge(top.pos, left.next);
    if (m == nullptr || m->id != top.id) continue;  // stale entry
    symbol& right = symbols[static_cast<std::size_t>(left.next)];
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) {
      if (const merge_target* p = find_merge(left.prev, top.pos)) queue.push({p->rank, left.prev, p->id});
    }
    if (left.next >= 0) {
      if (const merge_target* p = find_merge(top.pos, left.next)) queue.push({p->rank, top.pos, p->id});
    }
  }
  for (int i = n > 0 ? 0 : -1; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
    out.push_back(symbols[static_cast<std::size_t>(i)].id);
  }
}

std::string bpe_tokenizer::decode(const std::vector<token_id>& ids, bool skip_special) const {
  std::string out, bytes;
  const auto flush = [&] {
    out += utf8_repair(bytes);
    bytes.clear();
  };
  for (const token_id id : ids) {
    // Unknown ids are skipped, as Hugging Face does.
    if (id < 0 || static_cast<std::size_t>(id) >= entries_.size()) continue;
    const token_entry& entry = entries_[static_cast<std::size_t>(id)];
    if (entry.added >= 0) {
      if (skip_special && added_[static_cast<std::size_t>(entry.added)].special) continue;
      flush();
      out += entry.text;
    } else if (entry.in_vocab) {
      bytes += entry.bytes;
    }
  }
  flush();
  return out;
}

std::optional<token_id> bpe_tokenizer::token_to_id(const std::string& token) const {
  if (const auto it = added_by_content_.find(token); it != added_by_content_.end()) return it->second;
  if (const auto it = vocab_.find(token); it != vocab_.end()) return it->second;
  return std::nullopt;
}

std::string bpe_tokenizer::id_to_token(token_id id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= entries_.size() ||
      (!entries_[static_cast<std::size_t>(id)].in_vocab && entries_[static_cast<std::size_t>(id)].added < 0)) {
    throw input_error("token id " + std::to_string(id) + " is not in the tokenizer (vocab size " +
                      std::to_string(entries_.size()) + ")");
  }
  return entries_[static_cast<std::size_t>(id)].text;
}

bool bpe_tokenizer::is_special(token_id id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= entries_.size()) return false;
  const int added = entries_[static_cast<std::size_t>(id)].added;
  return added >= 0 && added_[static_cast<std::size_t>(added)].special;
}

// ---- Loading ------------------------------------------------------------------------

class bpe_loader {
 public:
  bpe_loader(const json_reader& reader, bpe_tokenizer& tok) : r_(reader), tok_(tok) {}

  void load(const json& root) {
    r_.require_object(root, "(root)");
    load_model(r_.require(root, "model", ""));
    load_added_tokens(root);
    build_entries();
    load_normalizer(root.contains("normalizer") ? root["normalizer"] : json(nullptr));
    load_pre_tokenizer(root.contains("pre_tokenizer") ? root["pre_tokenizer"] : json(nullptr));
    load_decoder(root.contains("decoder") ? root["decoder"] : json(nullptr));
    build_tries();
  }

 private:
  void load_model(const json& model) {
    r_.require_object(model, "model");
    if (const auto type = model.find("type"); type != model.end()) {
      const std::string& name = r_.require_string(*type, "model.type");
      if (name != "BPE") {
        r_.fail("model.type", quote_token(name) + " is unsupported: troupe reads byte-level BPE tokenizers only");
      }
    }
    const json& vocab = r_.require(model, "vocab", "model");
    r_.require_object(vocab, "model.vocab");
    std::unordered_map<token_id, const std::string*> by_id;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const std::string path = key_path("model.vocab", it.key());
      const token_id id = r_.require_id(it.value(), path);
      const auto [previous, inserted] = by_id.emplace(id, &it.key());
      if (!inserted) r_.fail(path, "id " + std::to_string(id) + " is already used by " + quote_token(*previous->second));
      tok_.vocab_.emplace(it.key(), id);
    }

    const auto reject_set = [&](const char* key, const char* why) {
      const auto it = model.find(key);
      if (it == model.end() || it->is_null()) return;
      if (it->is_string() && it->get_ref<const std::string&>().empty()) return;
      r_.fail(std::string("model.") + key, std::string("is unsupported: ") + why);
    };
    reject_set("dropout", "BPE dropout is for training; set it to null");
    reject_set("continuing_subword_prefix", "byte-level BPE does not use it");
    reject_set("end_of_word_suffix", "byte-level BPE does not use it");
    if (const auto unk = model.find("unk_token"); unk != model.end() && !unk->is_null()) {
      const std::string& name = r_.require_string(*unk, "model.unk_token");
      const auto id = tok_.vocab_.find(name);
      if (id == tok_.vocab_.end()) r_.fail("model.unk_token", "token " + quote_token(name) + " is not in the vocab");
      tok_.unk_ = id->second;
    }
    tok_.fuse_unk_ = r_.optional_bool(model, "fuse_unk", false, "model");
    tok_.byte_fallback_ = r_.optional_bool(model, "byte_fallback", false, "model");
    tok_.ignore_merges_ = r_.optional_bool(model, "ignore_merges", false, "model");

    const json& merges = r_.require(model, "merges", "model");
    if (!merges.is_array()) r_.fail("model.merges", std::string("expected an array, found ") + json_type_name(merges));
    tok_.merges_.reserve(merges.size());
    for (std::size_t i = 0; i < merges.size(); ++i) {
      const std::string path = "model.merges[" + std::to_string(i) + "]";
      std::string left, right;
      const json& m = merges[i];
      if (m.is_string()) {
        const std::string& text = m.get_ref<const std::string&>();
        const std::size_t space = text.find(' ');
        if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
          r_.fail(path, "expected two tokens separated by one space, found " + quote_token(text));
        }
        left = text.substr(0, space);
        right = text.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        r_.fail(path, "expected \"a b\" or [\"a\", \"b\"]");
      }
      const token_id a = vocab_id(left, path);
      const token_id b = vocab_id(right, path);
      const token_id merged = vocab_id(left + right, path);
      // A repeated pair takes its last rank, as Hugging Face's map does.
      tok_.merges_[pair_key(a, b)] = {static_cast<std::int32_t>(i), merged};
    }
  }

  token_id vocab_id(const std::string& token, const std::string& path) const {
    const auto it = tok_.vocab_.find(token);
    if (it == tok_.vocab_.end()) r_.fail(path, "token " + quote_token(token) + " is not in the vocab");
    return it->second;
  }

  void load_added_tokens(const json& root) {
    const auto list = root.find("added_tokens");
    if (list == root.end() || list->is_null()) return;
    if (!list->is_array()) r_.fail("added_tokens", std::string("expected an array, found ") + json_type_name(*list));
    std::unordered_map<token_id, std::size_t> seen_ids;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const std::string path = "added_tokens[" + std::to_string(i) + "]";
      const json& entry = r_.require_object((*list)[i], path);
      added_token t;
      t.id = r_.require_id(r_.require(entry, "id", path), path + ".id");
      t.content = r_.require_string(r_.require(entry, "content", path), path + ".content");
      if (t.content.empty()) r_.fail(path + ".content", "an added token cannot be empty");
      t.special = r_.optional_bool(entry, "special", false, path);
      t.lstrip = r_.optional_bool(entry, "lstrip", false, path);
      t.rstrip = r_.optional_bool(entry, "rstrip", false, path);
      t.single_word = r_.optional_bool(entry, "single_word", false, path);
      t.normalized = r_.optional_bool(entry, "normalized", !t.special, path);
      if (const auto [previous, inserted] = seen_ids.emplace(t.id, i); !inserted) {
        r_.fail(path + ".id", "id " + std::to_string(t.id) + " is already used by added_tokens[" +
                                  std::to_string(previous->second) + "]");
      }
      if (tok_.added_by_content_.count(t.content) != 0) {
        r_.fail(path + ".content", quote_token(t.content) + " is already an added token");
      }
      if (const auto v = tok_.vocab_.find(t.content); v != tok_.vocab_.end() && v->second != t.id) {
        r_.fail(path + ".id", quote_token(t.content) + " has id " + std::to_string(t.id) + " but the vocab gives it " +
                                  std::to_string(v->second));
      }
      tok_.added_by_content_.emplace(t.content, t.id);
      tok_.added_.push_back(std::move(t));
    }
  }

  void build_entries() {
    std::int64_t max_id = -1;
    for (const auto& [text, id] : tok_.vocab_) max_id = std::max<std::int64_t>(max_id, id);
    for (const added_token& t : tok_.added_) max_id = std::max<std::int64_t>(max_id, t.id);
    const auto distinct = static_cast<std::int64_t>(tok_.vocab_.size() + tok_.added_.size());
    if (max_id >= distinct + max_id_gap) {
      r_.fail_file("ids leave too many gaps: the largest is " + std::to_string(max_id) + " for " +
                   std::to_string(distinct) + " tokens");
    }
    tok_.entries_.resize(static_cast<std::size_t>(max_id + 1));
    const byte_level_map& map = byte_level();
    for (const auto& [text, id] : tok_.vocab_) {
      token_entry& e = tok_.entries_[static_cast<std::size_t>(id)];
      e.text = text;
      e.bytes = map.decode_token(text);
      e.in_vocab = true;
    }
    for (std::size_t i = 0; i < tok_.added_.size(); ++i) {
      const added_token& t = tok_.added_[i];
      token_entry& e = tok_.entries_[static_cast<std::size_t>(t.id)];
      if (e.in_vocab && e.text != t.content) {
        r_.fail("added_tokens[" + std::to_string(i) + "].id",
                "id " + std::to_string(t.id) + " is already the vocab's token " + quote_token(e.text));
      }
      e.text = t.content;
      e.added = static_cast<int>(i);
    }
    for (std::size_t b = 0; b < 256; ++b) {
      const auto it = tok_.vocab_.find(map.byte_to_text[b]);
      tok_.byte_ids_[b] = it == tok_.vocab_.end() ? -1 : it->second;
    }
  }

  void load_normalizer(const json& n) { load_normalizer_at(n, "normalizer"); }
  void load_normalizer_at(const json& n, const std::string& path) {
    if (n.is_null()) return;
    r_.require_object(n, path);
    const std::string& type = r_.require_string(r_.require(n, "type", path), path + ".type");
    if (type == "NFC") {
      tok_.nfc_ = true;
    } else if (type == "Sequence") {
      const json& list = r_.require(n, "normalizers", path);
      if (!list.is_array()) r_.fail(path + ".normalizers", "expected an array");
      for (std::size_t i = 0; i < list.size(); ++i) {
        load_normalizer_at(list[i], path + ".normalizers[" + std::to_string(i) + "]");
      }
    } else {
      r_.fail(path + ".type", quote_token(type) + " is unsupported (troupe reads null, NFC, or a Sequence of them)");
    }
  }

  void load_pre_tokenizer(const json& p) {
    const char* what = "troupe reads ByteLevel, or a Sequence of Split ending in ByteLevel";
    if (p.is_null()) r_.fail("pre_tokenizer", std::string("null is unsupported: ") + what);
    r_.require_object(p, "pre_tokenizer");
    const std::string& type = r_.require_string(r_.require(p, "type", "pre_tokenizer"), "pre_tokenizer.type");
    if (type == "ByteLevel") {
      load_byte_level(p, "pre_tokenizer");
      return;
    }
    if (type != "Sequence") r_.fail("pre_tokenizer.type", quote_token(type) + " is unsupported: " + what);
    const json& list = r_.require(p, "pretokenizers", "pre_tokenizer");
    if (!list.is_array()) r_.fail("pre_tokenizer.pretokenizers", "expected an array");
    bool byte_level_seen = false;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string path = "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]";
      const json& item = r_.require_object(list[i], path);
      const std::string& item_type = r_.require_string(r_.require(item, "type", path), path + ".type");
      if (byte_level_seen) r_.fail(path, std::string("nothing may follow ByteLevel: ") + what);
      if (item_type == "Split") {
        load_split(item, path);
      } else if (item_type == "ByteLevel") {
        load_byte_level(item, path);
        byte_level_seen = true;
      } else {
        r_.fail(path + ".type", quote_token(item_type) + " is unsupported: " + what);
      }
    }
    if (!byte_level_seen) r_.fail("pre_tokenizer.pretokenizers", std::string("no ByteLevel: ") + what);
  }

  void load_byte_level(const json& p, const std::string& path) {
    tok_.add_prefix_space_ = r_.optional_bool(p, "add_prefix_space", true, path);
    if (r_.optional_bool(p, "use_regex", true, path)) tok_.byte_level_split_ = make_rule(gpt2_pattern, path);
  }

  void load_split(const json& p, const std::string& path) {
    const json& pattern = r_.require_object(r_.require(p, "pattern", path), path + ".pattern");
    std::string regex;
    if (const auto re = pattern.find("Regex"); re != pattern.end()) {
      regex = r_.require_string(*re, path + ".pattern.Regex");
    } else if (const auto str = pattern.find("String"); str != pattern.end()) {
      regex = RE2::QuoteMeta(r_.require_string(*str, path + ".pattern.String"));
    } else {
      r_.fail(path + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    }
    if (r_.optional_bool(p, "invert", false, path)) r_.fail(path + ".invert", "true is unsupported");
    const std::string& behavior = r_.require_string(r_.require(p, "behavior", path), path + ".behavior");
    if (behavior != "Isolated" && behavior != "Removed") {
      r_.fail(path + ".behavior", quote_token(behavior) + " is unsupported (troupe reads Isolated and Removed)");
    }
    split_rule rule = make_rule(regex, path + ".pattern");
    rule.remove_matches = behavior == "Removed";
    tok_.splits_.push_back(std::move(rule));
  }

  split_rule make_rule(const std::string& pattern, const std::string& path) const {
    split_rule rule;
    std::string translated;
    try {
      translated = translate_split_pattern(pattern, rule.whitespace_tail);
    } catch (const input_error& e) {
      r_.fail(path, e.what());
    }
    if (!translated.empty()) {
      RE2::Options options;
      options.set_log_errors(false);
      options.set_encoding(RE2::Options::EncodingUTF8);
      rule.regex = std::make_unique<RE2>(translated, options);
      if (!rule.regex->ok()) r_.fail(path, "cannot compile the pattern: " + rule.regex->error());
    }
    return rule;
  }

  void load_decoder(const json& d) {
    if (d.is_null()) r_.fail("decoder", "null is unsupported: byte-level BPE needs the ByteLevel decoder");
    r_.require_object(d, "decoder");
    const std::string& type = r_.require_string(r_.require(d, "type", "decoder"), "decoder.type");
    if (type != "ByteLevel") r_.fail("decoder.type", quote_token(type) + " is unsupported (troupe reads ByteLevel)");
  }

  void build_tries() {
    for (std::size_t i = 0; i < tok_.added_.size(); ++i) {
      const added_token& t = tok_.added_[i];
      if (!t.normalized) {
        tok_.raw_trie_.add(t.content, static_cast<int>(i));
      } else {
        const std::string content = tok_.nfc_ ? nfc_normalize(t.content) : t.content;
        tok_.normalized_trie_.add(content, static_cast<int>(i));
      }
    }
  }

  const json_reader& r_;
  bpe_tokenizer& tok_;
};

}  // namespace

std::string translate_split_pattern(const std::string& pattern, bool& has_whitespace_tail) {
  static const std::string tail = R"(\s+(?!\S)|\s+)";
  std::string body = pattern;
  has_whitespace_tail = false;
  if (body == tail) {
    body.clear();
    has_whitespace_tail = true;
  } else if (body.size() > tail.size() + 1 && body.compare(body.size() - tail.size() - 1, std::string::npos, "|" + tail) == 0) {
    body.resize(body.size() - tail.size() - 1);
    has_whitespace_tail = true;
  }
  const std::string space_class = white_space_class_body;
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '\\') {
      if (i + 1 >= body.size()) throw input_error("the pattern ends with a lone backslash");
      const char e = body[++i];
      switch (e) {
        case 's':
          out += in_class ? space_class : "[" + space_class + "]";
          break;
        case 'S':
          if (in_class) throw input_error("\\S inside a character class is unsupported");
          out += "[^" + space_class + "]";
          break;
        case 'd':
          out += "\\p{Nd}";
          break;
        case 'D':
          if (in_class) throw input_error("\\D inside a character class is unsupported");
          out += "\\P{Nd}";
          break;
        case 'w':
        case 'W':
        case 'b':
        case 'B':
        case 'h':
        case 'H':
        case 'R':
        case 'X':
        case 'K':
        case 'G':
          throw input_error(std::string("\\") + e + " is unsupported (its Oniguruma meaning differs from RE2's)");
        default:
          out.push_back('\\');
          out.push_back(e);
      }
      continue;
    }
    if (in_class) {
      if (c == '[') {
        if (i + 1 < body.size() && body[i + 1] == ':') {
          const std::size_t close = body.find(":]", i + 2);
          if (close == std::string::npos) throw input_error("unterminated [: in a character class");
          out.append(body, i, close + 2 - i);
          i = close + 1;
          continue;
        }
        throw input_error("nested character classes are unsupported");
      }
      if (c == '&' && i + 1 < body.size() && body[i + 1] == '&') {
        throw input_error("character class intersection (&&) is unsupported");
      }
      if (c == ']') in_class = false;
      out.push_back(c);
      continue;
    }
    if (c == '[') {
      in_class = true;
      out.push_back(c);
      if (i + 1 < body.size() && body[i + 1] == '^') out.push_back(body[++i]);
      if (i + 1 < body.size() && body[i + 1] == ']') out.push_back(body[++i]);  // a literal ]
      continue;
    }
    if (c == '(' && i + 2 < body.size() && body[i + 1] == '?' &&
        (body[i + 2] == '=' || body[i + 2] == '!' || body[i + 2] == '<' || body[i + 2] == '>')) {
      throw input_error(
          "lookaround and atomic groups are unsupported (only the trailing \\s+(?!\\S)|\\s+ of the GPT-2, "
          "Llama 3 and Qwen2 patterns is handled)");
    }
    out.push_back(c);
  }
  if (in_class) throw input_error("unterminated character class");
  return out;
}

std::unique_ptr<tokenizer> load_bpe_tokenizer_from_string(const std::string& json_text,
                                                          const std::string& source_name) {
  const json_reader reader(source_name);
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    reader.fail_file(std::string("invalid JSON: ") + e.what());
  }
  auto tok = std::make_unique<bpe_tokenizer>();
  try {
    bpe_loader(reader, *tok).load(root);
  } catch (const json::exception& e) {
    reader.fail_file(std::string("unexpected JSON content: ") + e.what());
  }
  return tok;
}

std::unique_ptr<tokenizer> load_bpe_tokenizer(const std::string& path) {
  return load_bpe_tokenizer_from_string(read_tokenizer_file(path), path);
}

}  // namespace troupe
