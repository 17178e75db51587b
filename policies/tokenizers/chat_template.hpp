// Chat formatting: a conversation -> the prompt text a model was trained on.
//
// troupe does not run Jinja. It knows the formats below by heart and picks one by name
// or by recognising a tokenizer_config.json's `chat_template`:
// - chatml (Qwen2 and others):
//     <|im_start|>{role}\n{content}<|im_end|>\n ...   generation prompt: <|im_start|>assistant\n
//   Qwen2's own template also inserts "You are a helpful assistant." when the first
//   message is not a system message; troupe does not: pass the system message you want.
// - llama3 (Llama 3 Instruct):
//     <|begin_of_text|> before the first message, then
//     <|start_header_id|>{role}<|end_header_id|>\n\n{content, trimmed}<|eot_id|> ...
//   generation prompt: <|start_header_id|>assistant<|end_header_id|>\n\n
//   "trimmed" is Jinja's trim (Python's str.strip()). The Llama 3.1 template, with its
//   date header, is not this one.
// - plain (character-level tasks): the contents concatenated, no roles, nothing added.
// Both real templates are checked against jinja2's rendering in tests/fixtures/tokenizers.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace troupe {

struct chat_message {
  std::string role;  // system, user, assistant or tool
  std::string content;
};

enum class chat_format { chatml, llama3, plain };

// "chatml", "llama3" or "plain"; anything else is an input_error listing those.
chat_format chat_format_from_name(const std::string& name);
const char* chat_format_name(chat_format format);

// Recognises a Jinja chat template: `<|im_start|>` -> chatml, `<|start_header_id|>` ->
// llama3; anything else is an input_error naming `source` and the supported formats.
chat_format detect_chat_format(const std::string& chat_template, const std::string& source);

// The format named by `dir`/tokenizer_config.json's chat_template (a string, or a list
// of {"name", "template"} whose "default" entry is used).
chat_format chat_format_from_tokenizer_dir(const std::string& dir);
// The same, or nullopt when `dir` has no tokenizer_config.json or it has no chat
// template (a base model). Input errors as above for a template troupe does not know.
std::optional<chat_format> find_chat_format(const std::string& dir);

// The prompt text for `messages`, ending with the assistant's header when
// `add_generation_prompt`. A role outside system/user/assistant/tool is an input_error
// naming the message.
std::string format_chat(chat_format format, const std::vector<chat_message>& messages, bool add_generation_prompt);

}  // namespace troupe
