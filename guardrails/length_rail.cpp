// The `length` rail of a rails file: text longer than max_chars (or shorter than
// min_chars). Its mask action truncates to max_chars, on a UTF-8 character boundary.
#include "guardrails/configured_rail.hpp"

namespace troupe {

namespace {

struct length_config {
  rail_common common;
  std::int64_t max_chars = 0;
  std::int64_t min_chars = 0;

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("max_chars", max_chars, "triggers above this many bytes; 0 is no limit", at_least<std::int64_t>(0));
    v.field("min_chars", min_chars, "triggers below this many bytes; 0 is no limit", at_least<std::int64_t>(0));
  }
};

class length_rail : public configured_rail {
 public:
  length_rail(const rail_build& b, const length_config& c)
      : configured_rail(c.common, b.stage), max_(static_cast<std::size_t>(c.max_chars)),
        min_(static_cast<std::size_t>(c.min_chars)) {
    if (max_ == 0 && min_ == 0) rail_config_error(b.node, b.path, "needs max_chars or min_chars");
    if (max_ != 0 && min_ > max_)
      rail_config_error(node_or_self(b, "min_chars"), b.path + ".min_chars", "is above max_chars");
  }

 protected:
  detection detect(const std::string& text, const stop_flag&) const override {
    detection d;
    if (max_ != 0 && text.size() > max_) {
      d.triggered = true;
      d.reason = std::to_string(text.size()) + " characters > " + std::to_string(max_);
      std::size_t cut = max_;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // inside a UTF-8 sequence
      d.spans.push_back({cut, text.size(), ""});
    } else if (text.size() < min_) {
      d.triggered = true;
      d.reason = std::to_string(text.size()) + " characters < " + std::to_string(min_);
    }
    return d;
  }

 private:
  std::size_t max_, min_;
};

}  // namespace

std::unique_ptr<configured_rail> make_length_rail(const rail_build& b) {
  return std::make_unique<length_rail>(b, bind_rail_config<length_config>(b));
}

}  // namespace troupe
