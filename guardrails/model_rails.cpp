// Rails that ask a model: `perplexity` (jailbreak heuristics over a logprob_scorer) and
// `self_check` (a guard model answers yes or no). Both bound each model call by
// `timeout_ms`; a call that times out, throws, or (self_check) answers something other
// than yes or no gives the rail's `on_failure` result, and the decision log says which.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <iterator>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "guardrails/configured_rail.hpp"

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

// A model call's outcome: a value, or why there is none.
template <class T>
struct call_outcome {
  std::optional<T> value;
  std::string failure;  // "timed out after 50 ms", "failed: ...", "stopped"
};

// Runs fn() on its own thread and waits until it returns, `deadline` passes or `stop` is
// raised. An abandoned call finishes on its thread; fn must own what it uses (the
// model's shared_ptr), and its result is dropped.
template <class T, class F>
call_outcome<T> call_until(F fn, clock_type::time_point deadline, std::int64_t timeout_ms, const stop_flag& stop) {
  struct state {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::optional<T> value;
    std::string error;
  };
  auto st = std::make_shared<state>();
  try {
    std::thread([st, fn = std::move(fn)]() mutable {
      std::optional<T> v;
      std::string err;
      try {
        v = fn();
      } catch (const std::exception& e) {
        err = e.what();
      } catch (...) {
        err = "unknown exception";
      }
      std::lock_guard<std::mutex> lk(st->m);
      st->value = std::move(v);
      st->error = err.empty() && !st->value ? "no value" : err;
      st->done = true;
      st->cv.notify_all();
    }).detach();
  } catch (const std::system_error& e) {
    return {std::nullopt, std::string("failed: cannot start a thread: ") + e.what()};
  }
  std::unique_lock<std::mutex> lk(st->m);
  while (!st->done) {
    if (stop.load()) return {std::nullopt, "stopped"};
    const auto now = clock_type::now();
    if (now >= deadline) return {std::nullopt, "timed out after " + std::to_string(timeout_ms) + " ms"};
    st->cv.wait_until(lk, std::min(deadline, now + std::chrono::milliseconds(5)));
  }
  if (!st->error.empty()) return {std::nullopt, "failed: " + st->error};
  return {std::move(st->value), ""};
}

// `timeout_ms` and `on_failure`, shared by both rails.
struct model_call_settings {
  std::int64_t timeout_ms = 2000;
  std::string on_failure = "fail_closed";

  template <class V>
  void describe(V& v) {
    v.field("timeout_ms", timeout_ms, "longest wait for the model, per check", at_least<std::int64_t>(1));
    v.field("on_failure", on_failure,
            "timeout, error or unusable answer: fail_closed triggers the rail, fail_open allows the text",
            one_of{"fail_closed", "fail_open"});
  }
};

// The detection for a failed model call.
detection failed(const model_call_settings& s, const std::string& who, const std::string& why) {
  detection d;
  if (why == "stopped") {
    d.note = "stopped";
    return d;
  }
  const bool closed = s.on_failure == "fail_closed";
  d.triggered = closed;
  d.note = who + " " + why + ": " + (closed ? "fail-closed (triggered)" : "fail-open (allowed)");
  if (closed) d.reason = d.note;
  return d;
}

std::string fixed(double x) {
  std::ostringstream o;
  o.precision(4);
  o << x;
  return o.str();
}

// --- perplexity ------------------------------------------------------------------------

struct perplexity_config {
  rail_common common;
  std::vector<std::string> checks = {"length_per_perplexity", "prefix_suffix_perplexity"};
  double length_per_perplexity_threshold = 89.79;
  double prefix_suffix_perplexity_threshold = 1845.65;
  std::int64_t affix_words = 20;
  model_call_settings call;

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("checks", checks, "length_per_perplexity and/or prefix_suffix_perplexity");
    v.field("length_per_perplexity_threshold", length_per_perplexity_threshold,
            "triggers when characters / perplexity of the whole text reaches this", greater_than(0.0));
    v.field("prefix_suffix_perplexity_threshold", prefix_suffix_perplexity_threshold,
            "triggers when the perplexity of the first or last affix_words words reaches this", greater_than(1.0));
    v.field("affix_words", affix_words, "words in the prefix and the suffix; shorter texts skip that check",
            at_least<std::int64_t>(1));
    call.describe(v);
  }
};

class perplexity_rail : public configured_rail {
 public:
  perplexity_rail(const rail_build& b, const perplexity_config& c)
      : configured_rail(c.common, b.stage), cfg_(c), scorer_(b.services.scorer) {
    const config_node& list = node_or_self(b, "checks");
    if (c.checks.empty()) rail_config_error(list, b.path + ".checks", "needs at least one check");
    for (std::size_t i = 0; i < c.checks.size(); ++i) {
      const auto& x = c.checks[i];
      if (x == "length_per_perplexity") length_ = true;
      else if (x == "prefix_suffix_perplexity") affix_ = true;
      else
        rail_config_error(i < list.items.size() ? list.items[i] : list, b.path + ".checks[" + std::to_string(i) + "]",
                          "unknown check '" + x + "'" +
                            suggest(x, {"length_per_perplexity", "prefix_suffix_perplexity"}));
    }
  }

 public:
  bool calls_model() const override { return true; }

 protected:
  detection detect(const std::string& text, const stop_flag& stop) const override {
    const auto deadline = clock_type::now() + std::chrono::milliseconds(cfg_.call.timeout_ms);
    detection d;
    std::string why;
    if (length_) {
      auto p = perplexity(text, deadline, stop, why);
      if (!p) return failed(cfg_.call, "scorer", why);
      const double score = static_cast<double>(text.size()) / *p;
      if (score >= cfg_.length_per_perplexity_threshold) {
        d.triggered = true;
        d.reason = "length/perplexity " + fixed(score) + " >= " + fixed(cfg_.length_per_perplexity_threshold);
        return d;
      }
    }
    if (affix_) {
      std::istringstream in(text);
      std::vector<std::string> words{std::istream_iterator<std::string>(in), std::istream_iterator<std::string>()};
      const auto n = static_cast<std::size_t>(cfg_.affix_words);
      if (words.size() < n) return d;
      auto join = [](auto b, auto e) {
        std::string s;
        for (auto it = b; it != e; ++it) s += (s.empty() ? "" : " ") + *it;
        return s;
      };
      const std::pair<const char*, std::string> parts[] = {
        {"prefix", join(words.begin(), words.begin() + static_cast<std::ptrdiff_t>(n))},
        {"suffix", join(words.end() - static_cast<std::ptrdiff_t>(n), words.end())}};
      for (const auto& [label, part] : parts) {
        auto p = perplexity(part, deadline, stop, why);
        if (!p) return failed(cfg_.call, "scorer", why);
        if (*p >= cfg_.prefix_suffix_perplexity_threshold) {
          d.triggered = true;
          d.reason = std::string(label) + " perplexity " + fixed(*p) + " >= " +
                     fixed(cfg_.prefix_suffix_perplexity_threshold);
          return d;
        }
      }
    }
    return d;
  }

 private:
  // exp(-mean logprob), or nullopt with `why` set.
  std::optional<double> perplexity(const std::string& text, clock_type::time_point deadline, const stop_flag& stop,
                                   std::string& why) const {
    auto scorer = scorer_;
    auto out = call_until<std::vector<double>>([scorer, text] { return scorer->token_logprobs(text); }, deadline,
                                               cfg_.call.timeout_ms, stop);
    if (!out.value) {
      why = out.failure;
      return std::nullopt;
    }
    const auto& lp = *out.value;
    if (lp.empty() || std::any_of(lp.begin(), lp.end(), [](double x) { return !std::isfinite(x) || x > 0; })) {
      why = "returned unusable logprobs (none, positive or not finite)";
      return std::nullopt;
    }
    double sum = 0;
    for (double x : lp) sum += x;
    return std::exp(-sum / static_cast<double>(lp.size()));
  }

  perplexity_config cfg_;
  bool length_ = false, affix_ = false;
  std::shared_ptr<logprob_scorer> scorer_;
};

// --- self_check ------------------------------------------------------------------------

struct self_check_config {
  rail_common common;
  std::string prompt;
  std::string trigger_on = "yes";
  model_call_settings call;

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("prompt", prompt, "the guard model's prompt; {text} is replaced by the checked text");
    v.field("trigger_on", trigger_on, "the answer that triggers the rail", one_of{"yes", "no"});
    call.describe(v);
  }
};

// "yes", "no", or "" for anything else. Strict: surrounding whitespace, a final period
// and letter case are forgiven, nothing more ("Yes, but..." is not an answer).
std::string yes_or_no(const std::string& answer) {
  auto b = answer.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  std::string s = answer.substr(b, answer.find_last_not_of(" \t\r\n") - b + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s == "yes" || s == "no" ? s : "";
}

class self_check_rail : public configured_rail {
 public:
  self_check_rail(const rail_build& b, const self_check_config& c)
      : configured_rail(c.common, b.stage), cfg_(c), guard_(b.services.guard) {
    if (c.prompt.find("{text}") == std::string::npos)
      rail_config_error(node_or_self(b, "prompt"), b.path + ".prompt", "must contain {text}");
  }

 public:
  bool calls_model() const override { return true; }

 protected:
  detection detect(const std::string& text, const stop_flag& stop) const override {
    std::string prompt = cfg_.prompt;
    for (auto p = prompt.find("{text}"); p != std::string::npos; p = prompt.find("{text}", p + text.size()))
      prompt.replace(p, 6, text);
    auto guard = guard_;
    auto out = call_until<std::string>([guard, prompt] { return guard->answer(prompt); },
                                       clock_type::now() + std::chrono::milliseconds(cfg_.call.timeout_ms),
                                       cfg_.call.timeout_ms, stop);
    if (!out.value) return failed(cfg_.call, "guard model", out.failure);
    const std::string a = yes_or_no(*out.value);
    if (a.empty()) return failed(cfg_.call, "guard model", "gave no yes/no answer");
    detection d;
    if (a == cfg_.trigger_on) {
      d.triggered = true;
      d.reason = "guard model answered " + a;
    }
    return d;
  }

 private:
  self_check_config cfg_;
  std::shared_ptr<guard_model> guard_;
};

}  // namespace

std::unique_ptr<configured_rail> make_perplexity_rail(const rail_build& b) {
  return std::make_unique<perplexity_rail>(b, bind_rail_config<perplexity_config>(b));
}

std::unique_ptr<configured_rail> make_self_check_rail(const rail_build& b) {
  return std::make_unique<self_check_rail>(b, bind_rail_config<self_check_config>(b));
}

}  // namespace troupe
