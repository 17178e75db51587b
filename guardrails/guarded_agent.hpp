// A guarded agent: the rails around a model, for one conversational turn at a time
// (`troupe chat` drives it with a LibTorch generator; any other generator plugs in the
// same way, since this file knows nothing of models).
//
//   guarded_agent agent(engine);
//   auto turn = agent.respond(user_text, next_chunk, [](const std::string& s) { std::cout << s; });
//
// One turn: the input rails check the user's text; a block answers with the refusal
// and the model is never asked. Otherwise the model is asked for its reply in chunks
// (next_chunk(checked user text, reply so far) -> the next piece, nullopt when done),
// and after each chunk the output rails check the whole reply so far: a block stops
// generation and the reply becomes the refusal; mask and rewrite change what is shown.
// `show` receives text as soon as it is final, so a streamed reply never shows what a
// rail would have hidden: when a mask or rewrite changes text that was already shown,
// the rest of the reply is held back and shown whole at the end.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "guardrails/rails_engine.hpp"

namespace troupe {

struct guarded_turn {
  rails_result input;                // the input rails' check
  std::optional<rails_result> output;  // the output rails' last check (none if the input was blocked)
  std::string reply;                 // what the user saw, whole
  bool blocked = false;              // by an input or an output rail
  int chunks = 0;                    // chunks the model produced
};

class guarded_agent {
 public:
  using next_chunk_fn = std::function<std::optional<std::string>(const std::string& user_text, const std::string& reply)>;
  using show_fn = std::function<void(const std::string& text)>;

  explicit guarded_agent(const rails_engine& rails) : rails_(rails) {}

  guarded_turn respond(const std::string& user_text, const next_chunk_fn& next_chunk, const show_fn& show) const;

 private:
  const rails_engine& rails_;
};

}  // namespace troupe
