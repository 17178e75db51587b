#include "experiments/grpo/remote_kinds.hpp"

#include <nlohmann/json.hpp>

#include "actors/policy/generator_actor.hpp"
#include "experiments/setup/policy_setup.hpp"
#include "core/config_binding.hpp"
#include "core/config_tree.hpp"
#include "core/error.hpp"

namespace troupe {

namespace {

// The payload as JSON; input_error naming the kind and what is wrong.
nlohmann::json parse_payload(const std::string& kind, const std::string& payload) {
  try {
    auto j = nlohmann::json::parse(payload);
    if (!j.is_object()) throw input_error("not a JSON object");
    return j;
  } catch (const nlohmann::json::exception& e) {
    throw input_error(kind + " payload: " + e.what());
  } catch (const input_error& e) {
    throw input_error(kind + " payload: " + e.what());
  }
}

}  // namespace

std::string remote_generator_payload(const experiment_config& cfg, const weight_link& link) {
  nlohmann::json j;
  j["config"] = write_config(cfg);
  j["link"] = {{"host", link.host}, {"port", link.port}, {"timeout_s", link.timeout_s}, {"transport", link.transport}};
  return j.dump();
}

caf::actor spawn_remote_generator(caf::actor_system& sys, const std::string& payload) {
  const auto j = parse_payload("generator", payload);
  experiment_config cfg;
  weight_link link;
  try {
    cfg = read_config<experiment_config>(parse_config_text(j.at("config").get<std::string>(), "generator payload config"));
    const auto& l = j.at("link");
    link.host = l.at("host").get<std::string>();
    link.port = l.at("port").get<int>();
    link.timeout_s = l.at("timeout_s").get<double>();
    link.transport = l.value("transport", std::string("gloo"));
  } catch (const nlohmann::json::exception& e) {
    throw input_error(std::string("generator payload: ") + e.what());
  }
  if (cfg.weight_sync.codec == "fp8") link.fp8 = cfg.weight_sync.fp8;  // as the head's end (grpo_placement.cpp)
  auto policy = load_policy(cfg);
  const auto params = policy.model->parameters();
  const int device = !params.empty() && params.front().is_cuda() ? params.front().get_device() : 0;
  auto g = spawn_generator(sys, policy.model, policy.tok, 0, [link, device]() -> std::unique_ptr<weight_transport> {
    return open_link_end(link, 1, device);  // nccl: the generator's device
  });
  return caf::actor_cast<caf::actor>(g);  // a plain handle on the wire; the generator pool answers for it
}

}  // namespace troupe
