// spawn_trainer_rank and its payload (distributed/data_parallel.hpp).
#include <nlohmann/json.hpp>

#include "distributed/data_parallel.hpp"
#include "experiments/grpo/grpo.hpp"
#include "experiments/grpo/grpo_policy.hpp"
#include "experiments/setup/policy_setup.hpp"
#include "core/config_tree.hpp"
#include "core/error.hpp"

namespace troupe {
namespace {

struct trainer_rank_payload {
  std::string config;  // the experiment config, YAML text
  data_parallel_options data_parallel;

  template <class V>
  void describe(V& v) {
    v.field("config", config, "the experiment config as YAML text");
    v.field("data_parallel", data_parallel, "this rank's place in the trainer group");
  }
};

}  // namespace

std::string trainer_rank_payload_text(const std::string& config_text, const data_parallel_options& o) {
  nlohmann::json j;
  j["config"] = config_text;
  j["data_parallel"] = {{"rank", o.rank},       {"world_size", o.world_size}, {"host", o.host},
                        {"port", o.port},       {"timeout_s", o.timeout_s},   {"bucket_bytes", o.bucket_bytes}};
  return j.dump();
}

caf::actor spawn_trainer_rank(caf::actor_system& sys, const std::string& payload) {
  const auto p = read_config<trainer_rank_payload>(parse_config_text(payload, "trainer_rank payload"));
  if (p.config.empty()) throw input_error("trainer_rank payload: config: the experiment config text is missing");
  p.data_parallel.validate("trainer_rank payload: data_parallel");
  const auto cfg = read_config<experiment_config>(parse_config_text(p.config, "trainer_rank payload: config"));
  validate_grpo(cfg);
  auto built = load_policy(cfg);
  auto opts = grpo_trainer_options(cfg, built.pad_id);
  opts.data_parallel = p.data_parallel;
  return caf::actor_cast<caf::actor>(spawn_trainer_actor(sys, built.model, std::move(opts)));  // a plain handle on the wire
}

}  // namespace troupe
