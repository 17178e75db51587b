#include "experiments/setup/policy_setup.hpp"

#include <filesystem>

#include "core/error.hpp"
#include "core/run_dir.hpp"
#include "policies/checkpoint.hpp"

namespace troupe {

namespace {

std::string config_json(const std::string& dir) { return (std::filesystem::path(dir) / "config.json").string(); }

}  // namespace

void validate_policy(const policy_section& p) {
  if (!p.path.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(config_json(p.path), ec))
      throw input_error("policy.path: '" + p.path + "' is not a Hugging Face model directory (no config.json)");
    if (!std::filesystem::is_regular_file(std::filesystem::path(p.path) / "tokenizer.json", ec))
      throw input_error("policy.path: '" + p.path + "' has no tokenizer.json");
  } else {
    small_model_config(p, 2);  // head and size checks; the vocabulary comes later
  }
  if (p.chat_format != "auto") chat_format_from_name(p.chat_format);
  parse_torch_dtype(p.dtype);
  parse_torch_device(p.device);
}

policy_setup load_policy_tokenizer(const experiment_config& cfg) {
  const auto& p = cfg.policy;
  policy_setup out;
  if (p.path.empty()) {
    auto tok = make_char_tokenizer(cfg.tokenizer.alphabet, {"<pad>", "<bos>", "<eos>"});
    tok->set_special_ids(tok->token_to_id("<bos>"), tok->token_to_id("<eos>"), tok->token_to_id("<pad>"));
    out.config = small_model_config(p, static_cast<std::int64_t>(tok->vocab_size()));
    out.config.eos_token_ids = {*tok->eos_id()};
    out.tok = std::move(tok);
    out.chat = chat_format::plain;
  } else {
    out.tok = std::shared_ptr<const tokenizer>(load_tokenizer_dir(p.path));
    out.config = read_model_config(config_json(p.path));
    out.chat = p.chat_format != "auto" ? chat_format_from_name(p.chat_format)
                                       : find_chat_format(p.path).value_or(chat_format::plain);
  }
  out.pad_id = out.tok->pad_id() ? *out.tok->pad_id() : out.tok->eos_id() ? *out.tok->eos_id() : 0;
  return out;
}

policy_setup load_policy(const experiment_config& cfg) {
  const auto& p = cfg.policy;
  auto out = load_policy_tokenizer(cfg);
  const auto dtype = parse_torch_dtype(p.dtype);
  const auto device = parse_torch_device(p.device);
  if (p.path.empty()) {
    out.model = causal_lm(out.config);
    out.model->init_weights(static_cast<std::uint64_t>(p.init_seed));
    out.model->to(device, dtype);
  } else {
    out.model = load_pretrained(p.path, {dtype, device});
    out.config = out.model->config();
  }
  return out;
}

std::string describe_policy(const policy_section& p, const policy_setup& setup) {
  const auto& c = setup.config;
  return "policy: " + (p.path.empty() ? std::string("a small model built here") : p.path) + " (" + c.architecture +
         ", " + std::to_string(c.num_hidden_layers) + " layers, " + std::to_string(c.hidden_size) + " wide, " +
         std::to_string(c.vocab_size) + " ids), chat format " + chat_format_name(setup.chat);
}

std::vector<std::int32_t> encode_prompt(const tokenizer& tok, chat_format chat, const std::string& text) {
  std::vector<std::int32_t> ids;
  if (chat == chat_format::plain) {
    if (tok.bos_id()) ids.push_back(*tok.bos_id());
    for (auto id : tok.encode(text)) ids.push_back(id);
    return ids;
  }
  for (auto id : tok.encode(format_chat(chat, {{"user", text}}, /*add_generation_prompt=*/true))) ids.push_back(id);
  return ids;
}

std::vector<std::int32_t> encode_prompt(const policy_setup& p, const std::string& text) {
  return encode_prompt(*p.tok, p.chat, text);
}

void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    const auto src = std::filesystem::path(from) / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(src, ec)) continue;
    write_file_atomically((std::filesystem::path(to) / name).string(), read_tokenizer_file(src.string()));
  }
}

}  // namespace troupe
