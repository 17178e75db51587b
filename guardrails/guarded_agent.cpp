#include "guardrails/guarded_agent.hpp"

namespace troupe {

guarded_turn guarded_agent::respond(const std::string& user_text, const next_chunk_fn& next_chunk,
                                    const show_fn& show) const {
  guarded_turn turn;
  turn.input = rails_.check(rail_stage::input, user_text);
  if (turn.input.blocked()) {
    turn.blocked = true;
    turn.reply = turn.input.refusal;
    show(turn.reply);
    return turn;
  }
  std::string raw;           // the model's reply so far
  std::string shown;         // what `show` has received
  bool holding = false;      // a rewrite touched shown text: show the rest at the end
  while (auto piece = next_chunk(turn.input.text, raw)) {
    ++turn.chunks;
    raw += *piece;
    turn.output = rails_.check(rail_stage::output, raw);
    if (turn.output->blocked()) {
      // The refusal replaces the reply; what was shown already stays on the screen but
      // is no longer the reply.
      turn.blocked = true;
      turn.reply = turn.output->refusal;
      show((shown.empty() ? "" : "\n") + turn.reply);
      return turn;
    }
    const std::string& visible = turn.output->text;
    if (!holding && visible.compare(0, shown.size(), shown) == 0) {
      // Show all but the reply's last few bytes: a pattern still being written (an
      // email address half generated) must not be shown before the rails see it whole.
      constexpr std::size_t hold_back = 64;
      if (visible.size() > shown.size() + hold_back) {
        const auto upto = visible.size() - hold_back;
        show(visible.substr(shown.size(), upto - shown.size()));
        shown = visible.substr(0, upto);
      }
    } else {
      holding = true;
    }
  }
  turn.reply = turn.output ? turn.output->text : raw;
  if (!holding && turn.reply.compare(0, shown.size(), shown) == 0) show(turn.reply.substr(shown.size()));
  else show("\n" + turn.reply);
  return turn;
}

}  // namespace troupe
