// Rails that match text against lists the rails file gives: `regex` (patterns),
// `keywords` (literal words and phrases) and `topics` (phrase sets per topic, deny and
// allow). All run on RE2.
#include <algorithm>

#include "guardrails/configured_rail.hpp"
#include "guardrails/text_match.hpp"

namespace troupe {

namespace {

std::string trimmed(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// The phrases of a list, trimmed; an empty one is an error at its own line.
std::vector<std::string> phrases_of(const rail_build& b, const config_node& list_node, const std::string& path,
                                    const std::vector<std::string>& raw) {
  if (raw.empty()) rail_config_error(list_node, path, "needs at least one entry");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    out.push_back(trimmed(raw[i]));
    if (out.back().empty()) {
      const config_node& at = list_node.type == config_node::kind::sequence && i < list_node.items.size()
                                ? list_node.items[i] : b.node;
      rail_config_error(at, path + "[" + std::to_string(i) + "]", "is empty");
    }
  }
  return out;
}

// Finds every match of a compiled list; reports how many, never the matched text.
detection scan(const RE2& re, const std::string& text, const stop_flag& stop, const std::string& placeholder,
               const std::string& what) {
  detection d;
  for_each_match(re, text, stop, [&](std::size_t b, std::size_t e) {
    d.spans.push_back({b, e, placeholder});
    return true;
  });
  if (!d.spans.empty()) {
    d.triggered = true;
    d.reason = std::to_string(d.spans.size()) + " " + what + (d.spans.size() == 1 ? "" : "es") + ", first at byte " +
               std::to_string(d.spans.front().begin);
  }
  return d;
}

// --- regex -----------------------------------------------------------------------------

struct regex_config {
  rail_common common;
  std::vector<std::string> patterns;
  bool case_sensitive = true;
  std::string placeholder = "[REDACTED]";

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("patterns", patterns, "RE2 patterns; the rail triggers when any matches");
    v.field("case_sensitive", case_sensitive, "false: letters match either case");
    v.field("placeholder", placeholder, "mask: replaces each match");
  }
};

class regex_rail : public configured_rail {
 public:
  regex_rail(const rail_build& b, regex_config c) : configured_rail(c.common, b.stage), placeholder_(c.placeholder) {
    const config_node& list = node_or_self(b, "patterns");
    if (c.patterns.empty()) rail_config_error(list, b.path + ".patterns", "needs at least one pattern");
    // Each pattern alone first, so that a bad one is named by its index and line.
    std::string all;
    for (std::size_t i = 0; i < c.patterns.size(); ++i) {
      const config_node& at = i < list.items.size() ? list.items[i] : list;
      compile_regex(c.patterns[i], c.case_sensitive, at, b.path + ".patterns[" + std::to_string(i) + "]");
      all += (all.empty() ? "" : "|") + std::string("(?:") + c.patterns[i] + ")";
    }
    re_ = compile_regex(all, c.case_sensitive, list, b.path + ".patterns");
  }

 protected:
  detection detect(const std::string& text, const stop_flag& stop) const override {
    return scan(*re_, text, stop, placeholder_, "pattern match");
  }

 private:
  std::string placeholder_;
  std::unique_ptr<RE2> re_;
};

// --- keywords --------------------------------------------------------------------------

struct keywords_config {
  rail_common common;
  std::vector<std::string> keywords;
  bool case_sensitive = false;
  bool whole_words = true;
  std::string placeholder = "[REDACTED]";

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("keywords", keywords, "words or phrases; whitespace inside a phrase matches any whitespace");
    v.field("case_sensitive", case_sensitive, "true: letters must match case");
    v.field("whole_words", whole_words, "true: 'ass' does not match inside 'class'");
    v.field("placeholder", placeholder, "mask: replaces each match");
  }
};

class keywords_rail : public configured_rail {
 public:
  keywords_rail(const rail_build& b, keywords_config c) : configured_rail(c.common, b.stage), placeholder_(c.placeholder) {
    auto words = phrases_of(b, node_or_self(b, "keywords"), b.path + ".keywords", c.keywords);
    re_ = compile_regex(phrase_pattern(words, c.whole_words), c.case_sensitive, b.node, b.path + ".keywords");
  }

 protected:
  detection detect(const std::string& text, const stop_flag& stop) const override {
    return scan(*re_, text, stop, placeholder_, "keyword match");
  }

 private:
  std::string placeholder_;
  std::unique_ptr<RE2> re_;
};

// --- topics ----------------------------------------------------------------------------

struct topic_section {
  std::string topic;
  std::vector<std::string> phrases;

  template <class V>
  void describe(V& v) {
    v.field("topic", topic, "the topic's name, used in reasons");
    v.field("phrases", phrases, "words or phrases that mean the text is about the topic");
  }
};

struct topics_config {
  rail_common common;
  std::vector<topic_section> deny;
  std::vector<topic_section> allow;

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("deny", deny, "topics the text must not touch");
    v.field("allow", allow, "when not empty: the text must touch one of these topics");
  }
};

class topics_rail : public configured_rail {
 public:
  topics_rail(const rail_build& b, topics_config c) : configured_rail(c.common, b.stage) {
    if (c.deny.empty() && c.allow.empty()) rail_config_error(b.node, b.path, "needs a deny or an allow list");
    compile(b, "deny", c.deny, deny_);
    compile(b, "allow", c.allow, allow_);
  }

 protected:
  detection detect(const std::string& text, const stop_flag& stop) const override {
    detection d;
    for (const auto& t : deny_) {
      bool hit = false;
      for_each_match(*t.re, text, stop, [&](std::size_t, std::size_t) { return !(hit = true); });
      if (hit) {
        d.triggered = true;
        d.reason = "denied topic '" + t.name + "'";
        return d;
      }
    }
    if (allow_.empty()) return d;
    for (const auto& t : allow_) {
      bool hit = false;
      for_each_match(*t.re, text, stop, [&](std::size_t, std::size_t) { return !(hit = true); });
      if (hit) return d;
    }
    d.triggered = true;
    d.reason = "off topic: none of the allowed topics";
    return d;
  }

 private:
  struct compiled_topic {
    std::string name;
    std::unique_ptr<RE2> re;
  };

  static void compile(const rail_build& b, const char* key, const std::vector<topic_section>& in,
                      std::vector<compiled_topic>& out) {
    const config_node& list = node_or_self(b, key);
    for (std::size_t i = 0; i < in.size(); ++i) {
      const config_node& at = i < list.items.size() ? list.items[i] : list;
      const std::string path = b.path + "." + key + "[" + std::to_string(i) + "]";
      if (in[i].topic.empty()) rail_config_error(at, path + ".topic", "is missing or empty");
      auto words = phrases_of(b, node_or_self({at, path, b.stage, b.services}, "phrases"), path + ".phrases",
                              in[i].phrases);
      out.push_back({in[i].topic, compile_regex(phrase_pattern(words, true), false, at, path + ".phrases")});
    }
  }

  std::vector<compiled_topic> deny_, allow_;
};

}  // namespace

std::unique_ptr<configured_rail> make_regex_rail(const rail_build& b) {
  return std::make_unique<regex_rail>(b, bind_rail_config<regex_config>(b));
}

std::unique_ptr<configured_rail> make_keywords_rail(const rail_build& b) {
  return std::make_unique<keywords_rail>(b, bind_rail_config<keywords_config>(b));
}

std::unique_ptr<configured_rail> make_topics_rail(const rail_build& b) {
  return std::make_unique<topics_rail>(b, bind_rail_config<topics_config>(b));
}

}  // namespace troupe
