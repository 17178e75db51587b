#include "policies/tokenizers/char_tokenizer.hpp"

#include <algorithm>
#include <unordered_map>

#include "core/error.hpp"
#include "policies/tokenizers/unicode_text.hpp"

namespace troupe {

namespace {

std::size_t char_length(std::string_view text, std::size_t pos) {
  std::size_t next = pos;
  next_utf8(text, next);
  return next - pos;
}

class char_tokenizer final : public tokenizer {
 public:
  char_tokenizer(const std::string& alphabet, const std::vector<std::string>& specials) {
    if (!utf8_is_valid(alphabet)) throw input_error("character tokenizer: the alphabet is not valid UTF-8");
    for (std::size_t pos = 0; pos < alphabet.size();) {
      const std::size_t length = char_length(alphabet, pos);
      add(alphabet.substr(pos, length), "the alphabet");
      pos += length;
    }
    chars_ = tokens_.size();
    if (chars_ == 0) throw input_error("character tokenizer: the alphabet is empty");
    for (const std::string& s : specials) {
      if (s.empty()) throw input_error("character tokenizer: a special token is empty");
      add(s, "the special tokens");
      specials_by_length_.push_back(s);
    }
    std::stable_sort(specials_by_length_.begin(), specials_by_length_.end(),
                     [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }

  std::vector<token_id> encode(const std::string& text, bool parse_special) const override {
    std::vector<token_id> ids;
    for (std::size_t pos = 0; pos < text.size();) {
      if (parse_special) {
        const auto special = std::find_if(specials_by_length_.begin(), specials_by_length_.end(),
                                          [&](const std::string& s) { return text.compare(pos, s.size(), s) == 0; });
        if (special != specials_by_length_.end()) {
          ids.push_back(ids_.at(*special));
          pos += special->size();
          continue;
        }
      }
      const std::size_t length = char_length(text, pos);
      const std::string c = text.substr(pos, length);
      const auto it = ids_.find(c);
      if (it == ids_.end() || static_cast<std::size_t>(it->second) >= chars_) {
        throw input_error("character tokenizer: '" + c + "' at byte " + std::to_string(pos) +
                          " is not in the alphabet");
      }
      ids.push_back(it->second);
      pos += length;
    }
    return ids;
  }

  std::string decode(const std::vector<token_id>& ids, bool skip_special) const override {
    std::string out;
    for (const token_id id : ids) {
      if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) continue;
      if (skip_special && is_special(id)) continue;
      out += tokens_[static_cast<std::size_t>(id)];
    }
    return out;
  }

  std::size_t vocab_size() const override { return tokens_.size(); }

  std::optional<token_id> token_to_id(const std::string& token) const override {
    const auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }

  std::string id_to_token(token_id id) const override {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) {
      throw input_error("character tokenizer: token id " + std::to_string(id) + " is not in the tokenizer (vocab size " +
                        std::to_string(tokens_.size()) + ")");
    }
    return tokens_[static_cast<std::size_t>(id)];
  }

  bool is_special(token_id id) const override {
    return id >= 0 && static_cast<std::size_t>(id) >= chars_ && static_cast<std::size_t>(id) < tokens_.size();
  }

 private:
  void add(const std::string& token, const char* where) {
    if (!ids_.emplace(token, static_cast<token_id>(tokens_.size())).second) {
      throw input_error(std::string("character tokenizer: '") + token + "' appears twice (in " + where + ")");
    }
    tokens_.push_back(token);
  }

  std::vector<std::string> tokens_;  // by id: characters, then specials
  std::unordered_map<std::string, token_id> ids_;
  std::size_t chars_ = 0;
  std::vector<std::string> specials_by_length_;
};

}  // namespace

std::unique_ptr<tokenizer> make_char_tokenizer(const std::string& alphabet, const std::vector<std::string>& specials) {
  return std::make_unique<char_tokenizer>(alphabet, specials);
}

}  // namespace troupe
