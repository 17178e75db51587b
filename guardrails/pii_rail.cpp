// The `pii` rail: personal data (guardrails/pii.hpp) found in the text; mask replaces
// each piece by its typed placeholder ("[EMAIL]").
#include <map>

#include "guardrails/configured_rail.hpp"
#include "guardrails/pii.hpp"

namespace troupe {

namespace {

struct pii_config {
  rail_common common;
  std::vector<std::string> kinds = all_pii_kind_names();

  template <class V>
  void describe(V& v) {
    common.describe(v);
    v.field("kinds", kinds, "which of email, phone, credit_card, iban, ipv4, ipv6, ssn to look for");
  }
};

class pii_rail : public configured_rail {
 public:
  pii_rail(const rail_build& b, const pii_config& c) : configured_rail(c.common, b.stage) {
    const config_node& list = node_or_self(b, "kinds");
    if (c.kinds.empty()) rail_config_error(list, b.path + ".kinds", "needs at least one kind");
    for (std::size_t i = 0; i < c.kinds.size(); ++i) {
      pii_kind k{};
      if (!parse_pii_kind(c.kinds[i], k)) {
        rail_config_error(i < list.items.size() ? list.items[i] : list, b.path + ".kinds[" + std::to_string(i) + "]",
                          "unknown PII kind '" + c.kinds[i] + "'" + suggest(c.kinds[i], all_pii_kind_names()));
      }
      kinds_.push_back(k);
    }
  }

 protected:
  // The reason names kinds and counts, never the data.
  detection detect(const std::string& text, const stop_flag& stop) const override {
    detection d;
    std::map<std::string, int> counts;
    for (const auto& m : find_pii(text, kinds_, stop)) {
      d.spans.push_back({m.begin, m.end, placeholder(m.kind)});
      ++counts[to_string(m.kind)];
    }
    if (d.spans.empty()) return d;
    d.triggered = true;
    for (const auto& [k, n] : counts) d.reason += (d.reason.empty() ? "" : ", ") + std::to_string(n) + " " + k;
    return d;
  }

 private:
  std::vector<pii_kind> kinds_;
};

}  // namespace

std::unique_ptr<configured_rail> make_pii_rail(const rail_build& b) {
  return std::make_unique<pii_rail>(b, bind_rail_config<pii_config>(b));
}

}  // namespace troupe
