#include "algorithms/sft_data.hpp"

#include "core/error.hpp"

namespace troupe {

tokenize_result tokenize_example(const tokenizer& tok, const tokenize_options& opts,
                                 const std::vector<chat_message>& prompt, bool chat, const std::string& response,
                                 const std::string& source) {
  std::string prompt_text, response_text;
  if (chat) {
    prompt_text = format_chat(opts.format, prompt, /*add_generation_prompt=*/true);
    auto all = prompt;
    all.push_back({"assistant", response});
    const auto full = format_chat(opts.format, all, /*add_generation_prompt=*/false);
    // Every supported format renders the conversation as the generation prompt followed
    // by the assistant's turn, so the response is the rest of the full text.
    if (full.compare(0, prompt_text.size(), prompt_text) != 0)
      throw std::logic_error("chat format " + std::string(chat_format_name(opts.format)) +
                             ": the conversation does not start with its generation prompt");
    response_text = full.substr(prompt_text.size());
  } else {
    for (const auto& m : prompt) prompt_text += m.content;
    response_text = response;
  }
  if (response_text.empty()) throw input_error(source + ": the response is empty");

  auto encode = [&](const std::string& text, const char* what) {
    try {
      return tok.encode(text);
    } catch (const input_error& e) {
      throw input_error(source + ": the " + what + ": " + e.what());
    }
  };
  tokenize_result r;
  auto& ex = r.example;
  const bool templated = chat && opts.format != chat_format::plain;
  if (tok.bos_id() && !templated) ex.prompt.push_back(*tok.bos_id());
  for (auto id : encode(prompt_text, "prompt")) ex.prompt.push_back(id);
  // Token 0 of a row is predicted by nothing, and in a packed row by the end of the
  // previous example: every example needs a prompt token before its response.
  if (ex.prompt.empty()) throw input_error(source + ": the prompt is empty (and the tokenizer has no BOS)");
  ex.response = encode(response_text, "response");
  if (tok.eos_id() && !templated && (ex.response.empty() || ex.response.back() != *tok.eos_id()))
    ex.response.push_back(*tok.eos_id());

  if (opts.max_length > 0 && static_cast<std::int64_t>(ex.size()) > opts.max_length) {
    const auto room = opts.max_length - static_cast<std::int64_t>(ex.prompt.size());
    if (room < 1)
      throw input_error(source + ": the prompt is " + std::to_string(ex.prompt.size()) +
                        " tokens, which leaves no room for the response within data.max_length = " +
                        std::to_string(opts.max_length));
    ex.response.resize(static_cast<std::size_t>(room));
    r.truncated = true;
  }
  return r;
}

std::int64_t token_rows::tokens() const {
  std::int64_t n = 0;
  for (const auto& row : ids) n += static_cast<std::int64_t>(row.size());
  return n;
}

namespace {

void append(token_rows& rows, std::size_t r, const tokenized_example& ex, std::int32_t segment) {
  auto& ids = rows.ids[r];
  auto& mask = rows.loss_mask[r];
  ids.insert(ids.end(), ex.prompt.begin(), ex.prompt.end());
  ids.insert(ids.end(), ex.response.begin(), ex.response.end());
  mask.insert(mask.end(), ex.prompt.size(), 0);
  mask.insert(mask.end(), ex.response.size(), 1);
  if (segment > 0) rows.segments[r].insert(rows.segments[r].end(), ex.size(), segment);
}

}  // namespace

token_rows pad_examples(const std::vector<tokenized_example>& examples) {
  token_rows rows;
  rows.ids.resize(examples.size());
  rows.loss_mask.resize(examples.size());
  for (std::size_t i = 0; i < examples.size(); ++i) append(rows, i, examples[i], 0);
  return rows;
}

token_rows pair_examples(const std::vector<preference_tokens>& pairs) {
  std::vector<tokenized_example> rows;
  for (const auto& p : pairs) {
    rows.push_back(p.chosen);
    rows.push_back(p.rejected);
  }
  return pad_examples(rows);
}

token_rows pack_examples(const std::vector<tokenized_example>& examples, std::int64_t max_length) {
  if (max_length < 1) throw input_error("pack_examples: max_length must be positive");
  token_rows rows;
  std::vector<std::int32_t> used;  // examples per row so far
  for (const auto& ex : examples) {
    const auto n = static_cast<std::int64_t>(ex.size());
    if (n > max_length)
      throw input_error("pack_examples: an example of " + std::to_string(n) + " tokens exceeds max_length " +
                        std::to_string(max_length));
    std::size_t r = 0;
    while (r < rows.ids.size() && static_cast<std::int64_t>(rows.ids[r].size()) + n > max_length) ++r;
    if (r == rows.ids.size()) {
      rows.ids.emplace_back();
      rows.loss_mask.emplace_back();
      rows.segments.emplace_back();
      used.push_back(0);
    }
    append(rows, r, ex, ++used[r]);
  }
  return rows;
}

}  // namespace troupe
