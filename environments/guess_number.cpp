#include "environments/guess_number.hpp"

#include "core/error.hpp"
#include "core/hash.hpp"
#include "environments/expression.hpp"
#include "environments/options.hpp"
#include "environments/tags.hpp"

namespace troupe {

TROUPE_REGISTER_ENVIRONMENT("guess_number", guess_number_env,
                            "multi-turn: guess a secret integer from higher/lower feedback; <guess>N</guess>");

TROUPE_REGISTER_TASK_GENERATOR("guess_number", [](const environment_options& o, std::uint64_t seed) {
  return std::unique_ptr<task_source>(new guess_number_tasks(guess_number_options::parse(o), seed));
});

namespace {

const std::vector<std::string> stop = {"</guess>"};

std::int64_t metadata_int(const task& t, const char* key) {
  auto it = t.metadata.find(key);
  auto v = it == t.metadata.end() ? std::nullopt : parse_rational(it->second);
  if (!v || !v->is_integer())
    throw input_error("guess_number task '" + t.id + "': metadata." + key + ": expected an integer");
  return v->num;
}

std::string turns_left(int n) { return std::to_string(n) + (n == 1 ? " guess left" : " guesses left"); }

}  // namespace

guess_number_options guess_number_options::parse(const environment_options& o) {
  check_options(o, "guess_number", {"low", "high", "max_turns", "efficiency_bonus"});
  guess_number_options g;
  g.low = option_int(o, "low", g.low, -1000000000, 1000000000);
  g.high = option_int(o, "high", g.high, -1000000000, 1000000000);
  if (g.low >= g.high) throw input_error("env.options.low: must be below high");
  g.max_turns = static_cast<int>(option_int(o, "max_turns", g.max_turns, 1, 1000));
  g.efficiency_bonus = option_bool(o, "efficiency_bonus", g.efficiency_bonus);
  g.eval_fraction = option_eval_fraction(o);
  return g;
}

guess_number_tasks::guess_number_tasks(guess_number_options opts, std::uint64_t seed) : opts_(opts), seed_(seed) {}

task guess_number_tasks::at(split s, std::int64_t index) const {
  return draw_in_split(seed_, s, index, opts_.eval_fraction, [&](std::uint64_t r) {
    const auto span = static_cast<std::uint64_t>(opts_.high - opts_.low + 1);
    const std::int64_t secret = opts_.low + static_cast<std::int64_t>(splitmix64(r) % span);
    task_candidate c;
    const std::string lo = std::to_string(opts_.low), hi = std::to_string(opts_.high);
    c.key = lo + ".." + hi + ":" + std::to_string(secret);
    c.t.id = std::string("guess_number/") + split_name(s) + "/" + std::to_string(index);
    c.t.prompt = "I am thinking of an integer from " + lo + " to " + hi + ". Guess it: write your guess as " +
                 "<guess>N</guess>. After each guess I answer higher, lower or correct. You have " +
                 turns_left(opts_.max_turns) + ".";
    c.t.metadata = {{"secret", std::to_string(secret)}, {"low", lo}, {"high", hi}};
    return std::optional<task_candidate>(std::move(c));
  });
}

guess_number_env::guess_number_env(const environment_options& options) : opts_(guess_number_options::parse(options)) {}

observation guess_number_env::reset(const task& t) {
  secret_ = metadata_int(t, "secret");
  low_ = metadata_int(t, "low");
  high_ = metadata_int(t, "high");
  if (low_ > high_ || secret_ < low_ || secret_ > high_)
    throw input_error("guess_number task '" + t.id + "': metadata: need low <= secret <= high");
  turns_ = well_formed_ = 0;
  return {t.prompt, stop};
}

step_result guess_number_env::step(const std::string& action) {
  ++turns_;
  step_result r;
  const int left = opts_.max_turns - turns_;
  std::string feedback, why;
  auto tag = last_closed_tag(action, "guess");
  auto guess = tag ? parse_rational(tag->content) : std::nullopt;
  if (!tag) why = "no <guess> tag";
  else if (!guess || !guess->is_integer()) why = "'" + std::string(trim(tag->content)) + "' is not an integer";
  else if (guess->num < low_ || guess->num > high_)
    why = guess->to_string() + " is outside " + std::to_string(low_) + ".." + std::to_string(high_);
  if (why.empty()) {
    ++well_formed_;
    feedback = guess->num < secret_ ? "higher" : guess->num > secret_ ? "lower" : "correct";
  } else {
    feedback = "invalid";
    r.info["reason"] = why;
  }
  r.info["feedback"] = feedback;
  const bool solved = feedback == "correct";
  r.done = solved || left <= 0;
  if (!r.done) {
    r.next.text = (feedback == "invalid" ? "invalid guess: " + why + "; write <guess>N</guess>" : feedback) + " (" +
                  turns_left(left) + ")";
    r.next.stop_strings = stop;
    return r;
  }
  r.next.text = solved ? "correct" : "out of turns; it was " + std::to_string(secret_);
  r.rewards["solved"] = solved ? 1.0 : 0.0;
  r.rewards["efficiency"] = solved && opts_.efficiency_bonus && opts_.max_turns > 1
                                ? static_cast<double>(opts_.max_turns - turns_) / (opts_.max_turns - 1)
                                : (solved && opts_.efficiency_bonus ? 1.0 : 0.0);
  r.rewards["format"] = static_cast<double>(well_formed_) / turns_;
  r.info["reason"] = solved ? "" : "out of turns";
  r.info["turns"] = std::to_string(turns_);
  r.info["secret"] = std::to_string(secret_);
  return r;
}

}  // namespace troupe
