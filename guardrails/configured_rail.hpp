// The part every rail from a rails file shares: its name, the stage it is listed under,
// and what it does when it triggers (`on_trigger`). A rail family only says what it
// detects (`detect`); configured_rail turns that into a verdict. The families are
// declared at the bottom; rails_file.cpp holds the one table from `type:` to family.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config_binding.hpp"
#include "guardrails/model_interfaces.hpp"
#include "guardrails/rail.hpp"

namespace troupe {

// `on_trigger:` of a rail (a bare word is short for `{action: WORD}`).
struct on_trigger_section {
  std::string action = "block";
  std::string message = "Sorry, I can't help with that.";
  double weight = 1.0;
  std::string replacement = "***";

  template <class V>
  void describe(V& v) {
    v.field("action", action, "block, mask, rewrite, penalize or log",
            one_of{"block", "mask", "rewrite", "penalize", "log"});
    v.field("message", message, "block: the refusal returned instead of the text");
    v.field("weight", weight, "penalize: the reward subtracted while training", greater_than(0.0));
    v.field("replacement", replacement, "rewrite: the text that replaces every span the rail found");
  }
};

// The keys every rail has. A family's config struct starts its describe() with
// `common.describe(v)`, so its keys and these are one flat mapping.
struct rail_common {
  std::string name;
  std::string type;
  on_trigger_section on_trigger;

  template <class V>
  void describe(V& v) {
    v.field("name", name, "unique in the file; metrics are rails/<name>/...");
    v.field("type", type, "the rail family (docs/guardrails.md)");
    v.field("on_trigger", on_trigger, "what happens when the rail triggers");
  }
};

// What a rail family saw in one text.
struct detection {
  bool triggered = false;
  std::string reason;              // why it triggered; never the sensitive text itself
  std::vector<text_span> spans;    // where, for mask/rewrite (replacement: the typed placeholder)
  std::string note;                // for the decision log, triggered or not (timeouts...)
};

class configured_rail : public rail {
 public:
  configured_rail(rail_common common, rail_stage stage);
  const std::string& name() const override { return common_.name; }
  const std::string& type() const { return common_.type; }
  rail_stage stage() const { return stage_; }
  const on_trigger_section& on_trigger() const { return common_.on_trigger; }

  // True for rails that wait on a model (perplexity, self_check): the engine runs
  // those concurrently, as their time is waiting, not computing.
  virtual bool calls_model() const { return false; }

  rail_verdict check(rail_stage stage, const std::string& text) const override;
  // Allows text of the other stage (a file's output rails may sit in an experiment's
  // rail list, which is also asked about inputs).
  rail_verdict check_or_stop(rail_stage stage, const std::string& text, const stop_flag& stop) const override;

 protected:
  virtual detection detect(const std::string& text, const stop_flag& stop) const = 0;

 private:
  rail_common common_;
  rail_stage stage_;
};

// What a family's factory gets: the rail's mapping (with on_trigger normalized), its
// key path ("input[2]"), its stage and the models the caller supplied.
struct rail_build {
  const config_node& node;
  std::string path;
  rail_stage stage;
  const rail_services& services;
};

// Binds b.node to the family's config struct (unknown keys and bad values are errors
// naming file:line and key path).
template <class Config>
Config bind_rail_config(const rail_build& b) {
  Config c;
  config_reader::read_value(b.node, b.path, c);
  return c;
}

// Throws input_error "file:line: path: what" for the node (the caller adds the rail name).
[[noreturn]] void rail_config_error(const config_node& n, const std::string& path, const std::string& what);

// The node under `key` of b.node, or b.node itself when the key is absent (for errors).
const config_node& node_or_self(const rail_build& b, const char* key);

// --- the families (one file each) ---------------------------------------------------
std::unique_ptr<configured_rail> make_length_rail(const rail_build& b);       // length_rail.cpp
std::unique_ptr<configured_rail> make_regex_rail(const rail_build& b);        // pattern_rails.cpp
std::unique_ptr<configured_rail> make_keywords_rail(const rail_build& b);     // pattern_rails.cpp
std::unique_ptr<configured_rail> make_topics_rail(const rail_build& b);       // pattern_rails.cpp
std::unique_ptr<configured_rail> make_pii_rail(const rail_build& b);          // pii_rail.cpp
std::unique_ptr<configured_rail> make_json_schema_rail(const rail_build& b);  // json_schema_rail.cpp
std::unique_ptr<configured_rail> make_perplexity_rail(const rail_build& b);   // model_rails.cpp
std::unique_ptr<configured_rail> make_self_check_rail(const rail_build& b);   // model_rails.cpp

}  // namespace troupe
