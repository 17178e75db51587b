#include "environments/datasets.hpp"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/hash.hpp"

namespace troupe {

namespace {

using json = nlohmann::json;

// Calls on_line(object, "file:line") for each non-blank line of `path`.
template <class F>
void for_each_json_line(const std::string& path, F&& on_line) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path + ": cannot open the dataset (" + errno_text(errno) + ")");
  std::string line;
  std::int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string where = path + ":" + std::to_string(number);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double (1e999)
      throw input_error(where + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object()) throw input_error(where + ": expected a JSON object, got " + std::string(j.type_name()));
    on_line(j, where);
  }
  if (in.bad()) throw input_error(path + ": read failed (" + errno_text(errno) + ")");
}

std::string string_field(const json& j, const char* key, const std::string& where, bool non_empty) {
  auto it = j.find(key);
  if (it == j.end()) throw input_error(where + ": missing \"" + key + "\"");
  if (!it->is_string())
    throw input_error(where + ": \"" + key + "\" must be a string, got " + std::string(it->type_name()));
  auto s = it->get<std::string>();
  if (non_empty && s.empty()) throw input_error(where + ": \"" + key + "\" is empty");
  return s;
}

std::vector<chat_message> messages_field(const json& j, const std::string& where) {
  const auto& m = j.at("messages");
  if (!m.is_array() || m.empty()) throw input_error(where + ": \"messages\" must be a non-empty array");
  std::vector<chat_message> out;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const auto at = where + ": messages[" + std::to_string(i) + "]";
    if (!m[i].is_object()) throw input_error(at + " must be an object with \"role\" and \"content\"");
    chat_message msg{string_field(m[i], "role", at, true), string_field(m[i], "content", at, false)};
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "tool")
      throw input_error(at + ": unknown role \"" + msg.role + "\" (system, user, assistant or tool)");
    out.push_back(std::move(msg));
  }
  return out;
}

// The prompt of a line: "prompt" (one user message) or "messages" (all of them).
// Exactly one of the two must be present.
std::vector<chat_message> prompt_field(const json& j, const std::string& where, bool& chat) {
  const bool has_prompt = j.contains("prompt"), has_messages = j.contains("messages");
  if (has_prompt == has_messages)
    throw input_error(where + (has_prompt ? ": give either \"prompt\" or \"messages\", not both"
                                          : ": missing \"prompt\" (or \"messages\")"));
  chat = has_messages;
  if (has_messages) return messages_field(j, where);
  return {{"user", string_field(j, "prompt", where, true)}};
}

template <class T>
std::vector<T> nonempty(std::vector<T> v, const std::string& path) {
  if (v.empty()) throw input_error(path + ": no examples in the file");
  return v;
}

std::int64_t wrong_answer(std::int64_t answer, std::uint64_t h) {
  const auto offset = static_cast<std::int64_t>(1 + h % 9);
  return (h >> 32) & 1 ? answer + offset : answer - offset;
}

}  // namespace

std::vector<sft_example> read_sft_jsonl(const std::string& path) {
  std::vector<sft_example> out;
  for_each_json_line(path, [&](const json& j, const std::string& where) {
    sft_example e;
    e.source = where;
    if (j.contains("messages") && !j.contains("prompt")) {
      auto msgs = messages_field(j, where);
      if (msgs.size() < 2 || msgs.back().role != "assistant")
        throw input_error(where + ": a chat example needs at least two messages, the last one the assistant's "
                                  "(the response to learn)");
      e.response = msgs.back().content;
      if (e.response.empty()) throw input_error(where + ": the last (assistant) message is empty");
      msgs.pop_back();
      e.prompt = std::move(msgs);
      e.chat = true;
    } else {
      e.prompt = prompt_field(j, where, e.chat);
      e.response = string_field(j, "response", where, true);
    }
    out.push_back(std::move(e));
  });
  return nonempty(std::move(out), path);
}

std::vector<preference_example> read_preference_jsonl(const std::string& path) {
  std::vector<preference_example> out;
  for_each_json_line(path, [&](const json& j, const std::string& where) {
    preference_example e;
    e.source = where;
    e.prompt = prompt_field(j, where, e.chat);
    e.chosen = string_field(j, "chosen", where, true);
    e.rejected = string_field(j, "rejected", where, true);
    out.push_back(std::move(e));
  });
  return nonempty(std::move(out), path);
}

std::vector<sft_example> arithmetic_sft_examples(const arithmetic_options& opts, std::uint64_t seed, split s,
                                                 std::int64_t count) {
  arithmetic_tasks tasks(opts, seed);
  std::vector<sft_example> out;
  for (std::int64_t i = 0; i < count; ++i) {
    auto t = tasks.at(s, i);
    out.push_back({t.id, {{"user", t.prompt}}, t.metadata.at("answer") + "\n", false});
  }
  return out;
}

std::vector<preference_example> arithmetic_preference_examples(const arithmetic_options& opts, std::uint64_t seed,
                                                               split s, std::int64_t count) {
  arithmetic_tasks tasks(opts, seed);
  std::vector<preference_example> out;
  for (std::int64_t i = 0; i < count; ++i) {
    auto t = tasks.at(s, i);
    const auto answer = std::stoll(t.metadata.at("answer"));
    const auto h = splitmix64(seed ^ fnv1a(t.id) ^ 0x7e1ec7ULL);
    out.push_back({t.id, {{"user", t.prompt}}, std::to_string(answer) + "\n",
                   std::to_string(wrong_answer(answer, h)) + "\n", false});
  }
  return out;
}

split_indices split_by_hash(std::size_t count, double fraction, std::uint64_t seed) {
  split_indices out;
  for (std::size_t i = 0; i < count; ++i) {
    const auto h = splitmix64(seed ^ splitmix64(static_cast<std::uint64_t>(i) + 0x5b1177ULL));
    (static_cast<double>(h % 1000000) < fraction * 1e6 ? out.eval : out.train).push_back(i);
  }
  return out;
}

}  // namespace troupe
