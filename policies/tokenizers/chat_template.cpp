#include "policies/tokenizers/chat_template.hpp"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "policies/tokenizers/tokenizer.hpp"
#include "policies/tokenizers/unicode_text.hpp"

namespace troupe {

namespace {

constexpr const char* supported = "supported formats: chatml, llama3, plain";

// Python's str.isspace(): White_Space plus the separators U+001C..U+001F.
bool is_python_space(char32_t cp) {
  return is_unicode_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}

// Jinja's `trim` filter (Python's str.strip()).
std::string python_strip(const std::string& text) {
  std::size_t begin = 0, end = text.size();
  while (begin < end) {
    std::size_t next = begin;
    if (!is_python_space(next_utf8(text, next))) break;
    begin = next;
  }
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    std::size_t probe = start;
    if (!is_python_space(next_utf8(text, probe)) || probe != end) break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

void check_roles(const std::vector<chat_message>& messages) {
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      throw input_error("chat message " + std::to_string(i) + ": role '" + role +
                        "' is not one of system, user, assistant, tool");
    }
  }
}

}  // namespace

chat_format chat_format_from_name(const std::string& name) {
  if (name == "chatml") return chat_format::chatml;
  if (name == "llama3") return chat_format::llama3;
  if (name == "plain") return chat_format::plain;
  throw input_error("chat format '" + name + "' is unknown; " + supported);
}

const char* chat_format_name(chat_format format) {
  switch (format) {
    case chat_format::chatml:
      return "chatml";
    case chat_format::llama3:
      return "llama3";
    case chat_format::plain:
      return "plain";
  }
  return "?";
}

chat_format detect_chat_format(const std::string& chat_template, const std::string& source) {
  if (chat_template.find("<|im_start|>") != std::string::npos) return chat_format::chatml;
  if (chat_template.find("<|start_header_id|>") != std::string::npos) return chat_format::llama3;
  throw input_error(source + ": the chat template is not one troupe knows (it recognises ChatML by <|im_start|> and "
                             "Llama 3 by <|start_header_id|>); name the format instead, " +
                    supported);
}

chat_format chat_format_from_tokenizer_dir(const std::string& dir) {
  if (auto f = find_chat_format(dir)) return *f;
  throw input_error(dir + "/tokenizer_config.json: chat_template: missing; " + supported);
}

std::optional<chat_format> find_chat_format(const std::string& dir) {
  const std::string path = dir + "/tokenizer_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_tokenizer_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw input_error(path + ": invalid JSON: " + e.what());
  }
  if (!config.is_object()) throw input_error(path + ": expected a JSON object");
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return detect_chat_format(it->get<std::string>(), path + ": chat_template");
  if (it->is_array()) {
    for (std::size_t i = 0; i < it->size(); ++i) {
      const nlohmann::json& entry = (*it)[i];
      const std::string where = path + ": chat_template[" + std::to_string(i) + "]";
      if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
          !entry["name"].is_string() || !entry["template"].is_string()) {
        throw input_error(where + ": expected {\"name\": ..., \"template\": ...}");
      }
      if (entry["name"] == "default") return detect_chat_format(entry["template"].get<std::string>(), where);
    }
    throw input_error(path + ": chat_template: no entry named \"default\"");
  }
  throw input_error(path + ": chat_template: expected a string or a list, found " + it->type_name());
}

std::string format_chat(chat_format format, const std::vector<chat_message>& messages, bool add_generation_prompt) {
  check_roles(messages);
  std::string out;
  switch (format) {
    case chat_format::chatml:
      for (const chat_message& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      break;
    case chat_format::llama3:
      for (std::size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out += "<|begin_of_text|>";
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" + python_strip(messages[i].content) +
               "<|eot_id|>";
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    case chat_format::plain:
      for (const chat_message& m : messages) out += m.content;
      break;
  }
  return out;
}

}  // namespace troupe
