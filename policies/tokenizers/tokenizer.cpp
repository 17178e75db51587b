#include "policies/tokenizers/tokenizer.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace troupe {

namespace {

using json = nlohmann::json;

bool file_exists(const std::string& path) {
  return std::ifstream(path).good();
}

json parse_json_file(const std::string& path) {
  const std::string text = read_tokenizer_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    throw input_error(path + ": invalid JSON: " + e.what());
  }
}

// tokenizer_config.json's `key`: a token given as a string or {"content": ...}.
std::optional<token_id> config_token(const tokenizer& tok, const json& config, const std::string& key,
                                     const std::string& path) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  const json* content = &*it;
  std::string where = key;
  if (it->is_object()) {
    const auto c = it->find("content");
    if (c == it->end()) throw input_error(path + ": " + key + ".content: missing");
    content = &*c;
    where += ".content";
  }
  if (!content->is_string()) {
    throw input_error(path + ": " + where + ": expected a string, found " + content->type_name());
  }
  const std::string& text = content->get_ref<const std::string&>();
  const std::optional<token_id> id = tok.token_to_id(text);
  if (!id) throw input_error(path + ": " + where + ": token '" + text + "' is not in the tokenizer");
  return id;
}

// config.json's `key`: an id, or a list of ids whose first is taken.
std::optional<token_id> config_id(const tokenizer& tok, const json& config, const std::string& key,
                                  const std::string& path) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  const json* value = &*it;
  std::string where = key;
  if (it->is_array()) {
    if (it->empty()) return std::nullopt;
    value = &(*it)[0];
    where += "[0]";
  }
  if (!value->is_number_integer() || value->get<std::int64_t>() < 0 ||
      value->get<std::int64_t>() >= static_cast<std::int64_t>(tok.vocab_size())) {
    throw input_error(path + ": " + where + ": expected a token id below the vocab size " +
                      std::to_string(tok.vocab_size()));
  }
  return static_cast<token_id>(value->get<std::int64_t>());
}

}  // namespace

std::string read_tokenizer_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw input_error(path + ": cannot read the file");
  return text.str();
}

std::unique_ptr<tokenizer> load_tokenizer_dir(const std::string& dir) {
  const std::string tokenizer_path = dir + "/tokenizer.json";
  if (!file_exists(tokenizer_path)) {
    throw input_error(dir + ": no tokenizer.json (troupe reads Hugging Face byte-level BPE tokenizers)");
  }
  std::unique_ptr<tokenizer> tok = load_bpe_tokenizer(tokenizer_path);
  std::optional<token_id> bos, eos, pad;
  const std::string config_path = dir + "/tokenizer_config.json";
  if (file_exists(config_path)) {
    const json config = parse_json_file(config_path);
    if (!config.is_object()) throw input_error(config_path + ": expected a JSON object");
    bos = config_token(*tok, config, "bos_token", config_path);
    eos = config_token(*tok, config, "eos_token", config_path);
    pad = config_token(*tok, config, "pad_token", config_path);
  }
  const std::string model_config_path = dir + "/config.json";
  if ((!bos || !eos) && file_exists(model_config_path)) {
    const json config = parse_json_file(model_config_path);
    if (!config.is_object()) throw input_error(model_config_path + ": expected a JSON object");
    if (!bos) bos = config_id(*tok, config, "bos_token_id", model_config_path);
    if (!eos) eos = config_id(*tok, config, "eos_token_id", model_config_path);
  }
  tok->set_special_ids(bos, eos, pad);
  return tok;
}

}  // namespace troupe
