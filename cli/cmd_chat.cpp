// `troupe chat`: a guarded agent on the terminal. Each line on stdin is a user turn:
// input rails, then the model (streamed in chunks), then output rails on each chunk
// (guardrails/guarded_agent.hpp). Part of the torch plugin.
#include <iostream>

#include "actors/policy/lm_guard_model.hpp"
#include "cli/commands.hpp"
#include "core/error.hpp"
#include "guardrails/guarded_agent.hpp"
#include "guardrails/model_interfaces.hpp"
#include "policies/tokenizers/chat_template.hpp"
#include "policies/checkpoint.hpp"
#include "policies/generation.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe::cli {

namespace {

constexpr const char* chat_usage = R"(usage: troupe chat --model DIR [--rails FILE] [options]

A chat with the model in DIR (a Hugging Face directory), one user turn per line of
stdin, guarded by the rails in FILE (docs/guardrails.md): the input rails check each
line before the model sees it; the output rails check the reply every --chunk-tokens
tokens while it streams, and a block stops it. Triggered rails are logged on stderr.
Rails that ask a model (perplexity, self_check) ask the chat model itself.

  --rails FILE         a rails file (without: no rails)
  --system TEXT        a system message before the conversation
  --max-new-tokens N   reply length at most (default 128)
  --chunk-tokens K     tokens between output-rail checks (default 16)
  --temperature T      0 is greedy (default 0.7)
  --seed S             sampling seed (default 0)
  --dtype D            float32 or bfloat16 (default float32)
  --device D           cpu, cuda or cuda:N (default cpu)
The chat format comes from the model's tokenizer_config.json (chatml or llama3); a
model without one gets the plain text of the turns.
)";

struct chat_args {
  std::string model, rails, system, dtype = "float32", device = "cpu";
  std::int64_t max_new_tokens = 128, chunk_tokens = 16;
  double temperature = 0.7;
  std::uint64_t seed = 0;
};

std::int64_t int_arg(const std::string& flag, const std::string& v, std::int64_t lo) {
  try {
    std::size_t used = 0;
    const auto x = std::stoll(v, &used);
    if (used == v.size() && x >= lo) return x;
  } catch (const std::exception&) {
  }
  throw input_error("chat: " + flag + ": expected an integer >= " + std::to_string(lo) + ", got '" + v + "'");
}

chat_args parse(const args& a) {
  chat_args c;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& f = a[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= a.size()) throw input_error("chat: " + f + " needs a value");
      return a[++i];
    };
    if (f == "--model") c.model = value();
    else if (f == "--rails") c.rails = value();
    else if (f == "--system") c.system = value();
    else if (f == "--max-new-tokens") c.max_new_tokens = int_arg(f, value(), 1);
    else if (f == "--chunk-tokens") c.chunk_tokens = int_arg(f, value(), 1);
    else if (f == "--seed") c.seed = static_cast<std::uint64_t>(int_arg(f, value(), 0));
    else if (f == "--temperature") {
      const auto& v = value();
      try {
        c.temperature = std::stod(v);
      } catch (const std::exception&) {
        throw input_error("chat: --temperature: expected a number, got '" + v + "'");
      }
      if (c.temperature < 0) throw input_error("chat: --temperature: must be >= 0");
    } else if (f == "--dtype") c.dtype = value();
    else if (f == "--device") c.device = value();
    else throw input_error("chat: unknown argument '" + f + "' (see troupe chat --help)");
  }
  if (c.model.empty()) throw input_error("chat: --model DIR is required");
  return c;
}

void log_decisions(const rails_result& r, const char* stage) {
  for (const auto& d : r.log)
    if (d.action != rail_action::allow || !d.note.empty())
      std::cerr << "[rails] " << stage << " " << d.rail << ": " << to_string(d.action)
                << (d.reason.empty() ? "" : " (" + d.reason + ")") << (d.note.empty() ? "" : " [" + d.note + "]")
                << ", " << d.latency_ms << " ms\n";
}

}  // namespace

int cmd_chat(const args& a) {
  if (wants_help(a)) {
    std::cout << chat_usage;
    return 0;
  }
  const auto c = parse(a);
  load_options lo;
  lo.dtype = parse_torch_dtype(c.dtype);
  lo.device = parse_torch_device(c.device);
  std::shared_ptr<const tokenizer> tok = load_tokenizer_dir(c.model);
  auto model = load_pretrained(c.model, lo);
  // The chat model also backs the rails that ask a model (perplexity, self_check).
  auto services = std::make_shared<lm_guard_model>(model, tok);
  rails_engine engine(c.rails.empty() ? rails_file{} : load_rails_file(c.rails, rail_services{services, services}));
  const auto format = find_chat_format(c.model).value_or(chat_format::plain);
  guarded_agent agent(engine);

  std::vector<chat_message> history;
  if (!c.system.empty()) history.push_back({"system", c.system});
  std::uint64_t turn_no = 0;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    // The model's state for this turn: the prompt's ids, then the reply's as it grows.
    std::vector<token_id> ids;
    std::int64_t generated = 0;
    bool finished = false;
    auto next_chunk = [&](const std::string& user, const std::string&) -> std::optional<std::string> {
      if (finished || generated >= c.max_new_tokens) return std::nullopt;
      if (ids.empty()) {
        auto turn = history;
        turn.push_back({"user", user});
        ids = tok->encode(format_chat(format, turn, /*add_generation_prompt=*/format != chat_format::plain));
        if (format == chat_format::plain && tok->bos_id()) ids.insert(ids.begin(), *tok->bos_id());
      }
      generation_request req;
      req.prompt = ids;
      req.params.max_new_tokens = std::min(c.chunk_tokens, c.max_new_tokens - generated);
      req.params.temperature = c.temperature;
      req.seed = c.seed + turn_no * 1000003ULL + static_cast<std::uint64_t>(generated);
      auto out = services->generate(req);
      ids.insert(ids.end(), out.tokens.begin(), out.tokens.end());
      generated += static_cast<std::int64_t>(out.tokens.size());
      finished = out.finish != finish_reason::length || out.tokens.empty();
      return out.text;
    };
    std::cout << "> " << std::flush;
    auto t = agent.respond(line, next_chunk, [](const std::string& s) { std::cout << s << std::flush; });
    std::cout << '\n';
    log_decisions(t.input, "input");
    if (t.output) log_decisions(*t.output, "output");
    // Blocked turns stay out of the history: the model never saw them.
    if (!t.blocked) {
      history.push_back({"user", t.input.text});
      history.push_back({"assistant", t.reply});
    }
    ++turn_no;
  }
  return 0;
}

}  // namespace troupe::cli
