// `troupe generate`: one completion from a Hugging Face model directory. Part of the
// torch plugin (it needs LibTorch); main() reaches it through torch_plugin().
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "policies/tokenizers/chat_template.hpp"
#include "policies/checkpoint.hpp"
#include "policies/generation.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe::cli {

namespace {

constexpr const char* generate_usage = R"(usage: troupe generate --model DIR --prompt TEXT [options]

Generates one completion with the model in DIR (a Hugging Face directory: config.json,
model.safetensors or shards, tokenizer.json) and prints it.

  --max-new-tokens N   tokens to generate at most (default 64)
  --temperature T      0 is greedy (default 1.0)
  --top-k K            keep the K most likely tokens; 0 is off (default 0)
  --top-p P            nucleus sampling mass; 1 is off (default 1.0)
  --seed S             sampling seed (default 0): the same seed gives the same text
  --stop STRING        stop once the text contains STRING (repeatable)
  --chat               format the prompt as one user turn with the model's chat
                       template (from tokenizer_config.json) and a generation prompt
  --dtype D            float32 or bfloat16 (default float32)
  --device D           cpu, cuda or cuda:N (default cpu)
  --json               print {"tokens", "text", "logprobs", "logprobs_from",
                       "finish_reason", "prompt_tokens"} as one JSON object
Logprobs are the model's: log_softmax(logits / temperature) of each generated token
(temperature 1 when greedy).
)";

struct generate_args {
  std::string model, prompt, dtype = "float32", device = "cpu";
  sampling_params params;
  std::uint64_t seed = 0;
  bool chat = false, json = false;
};

template <class T>
T number(const std::string& flag, const std::string& text) {
  try {
    std::size_t used = 0;
    T v;
    if constexpr (std::is_floating_point_v<T>) v = static_cast<T>(std::stod(text, &used));
    else v = static_cast<T>(std::stoll(text, &used));
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw input_error("generate: " + flag + ": expected a number, got '" + text + "'");
}

generate_args parse(const args& a) {
  generate_args g;
  g.params.temperature = 1.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& f = a[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= a.size()) throw input_error("generate: " + f + " needs a value");
      return a[++i];
    };
    if (f == "--model") g.model = value();
    else if (f == "--prompt") g.prompt = value();
    else if (f == "--max-new-tokens") g.params.max_new_tokens = number<std::int64_t>(f, value());
    else if (f == "--temperature") g.params.temperature = number<double>(f, value());
    else if (f == "--top-k") g.params.top_k = number<std::int64_t>(f, value());
    else if (f == "--top-p") g.params.top_p = number<double>(f, value());
    else if (f == "--seed") g.seed = number<std::uint64_t>(f, value());
    else if (f == "--stop") g.params.stop_strings.push_back(value());
    else if (f == "--dtype") g.dtype = value();
    else if (f == "--device") g.device = value();
    else if (f == "--chat") g.chat = true;
    else if (f == "--json") g.json = true;
    else throw input_error("generate: unknown argument '" + f + "' (see troupe generate --help)");
  }
  if (g.model.empty()) throw input_error("generate: --model DIR is required");
  if (g.prompt.empty()) throw input_error("generate: --prompt TEXT is required");
  return g;
}

}  // namespace

int cmd_generate(const args& a) {
  if (wants_help(a)) {
    std::cout << generate_usage;
    return 0;
  }
  const auto g = parse(a);
  load_options opts;
  opts.dtype = parse_torch_dtype(g.dtype);
  opts.device = parse_torch_device(g.device);
  auto tok = load_tokenizer_dir(g.model);
  auto model = load_pretrained(g.model, opts);
  if (static_cast<std::int64_t>(tok->vocab_size()) > model->config().vocab_size)
    throw input_error(g.model + ": tokenizer has " + std::to_string(tok->vocab_size()) + " ids but the model only " +
                      std::to_string(model->config().vocab_size));

  std::string text = g.prompt;
  if (g.chat) text = format_chat(chat_format_from_tokenizer_dir(g.model), {{"user", g.prompt}}, /*add_generation_prompt=*/true);
  generation_request req;
  req.prompt = tok->encode(text);
  if (req.prompt.empty() && tok->bos_id()) req.prompt.push_back(*tok->bos_id());
  req.params = g.params;
  req.seed = g.seed;

  generation_engine engine(model, tok.get());
  auto out = engine.generate({req})[0];
  if (g.json) {
    nlohmann::json j;
    j["tokens"] = out.tokens;
    j["text"] = out.text;
    j["logprobs"] = out.logprobs;
    j["logprobs_from"] = to_string(out.logprobs_from);
    j["finish_reason"] = to_string(out.finish);
    j["prompt_tokens"] = req.prompt.size();
    // Replace invalid UTF-8 (a cut multi-byte character) instead of throwing.
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  } else {
    std::cout << out.text << '\n';
  }
  return 0;
}

}  // namespace troupe::cli
