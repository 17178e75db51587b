#include "actors/protocol/message_types.hpp"

namespace troupe {

void register_message_types(caf::actor_system_config& cfg) {
  // add_message_type<T> also registers std::vector<T>.
  cfg.add_message_type<metric_row>("troupe::metric_row");
  cfg.add_message_type<rollout_row>("troupe::rollout_row");
  cfg.add_message_type<checkpoint_row>("troupe::checkpoint_row");
  cfg.add_message_type<event_row>("troupe::event_row");
  cfg.add_message_type<std::vector<std::int64_t>>("troupe::i64_vector");
  cfg.add_message_type<task>("troupe::task");
  cfg.add_message_type<observation>("troupe::observation");
  cfg.add_message_type<step_result>("troupe::step_result");
  cfg.add_message_type<episode_request>("troupe::episode_request");
  cfg.add_message_type<episode_result>("troupe::episode_result");
  cfg.add_message_type<rail_stage>("troupe::rail_stage");
  cfg.add_message_type<rail_verdict>("troupe::rail_verdict");
  cfg.add_message_type<rail_decision>("troupe::rail_decision");
  cfg.add_message_type<rails_result>("troupe::rails_result");
  cfg.add_message_type<rail_counter>("troupe::rail_counter");
  cfg.add_message_type<std::vector<double>>("troupe::f64_vector");
  cfg.add_message_type<reward_request>("troupe::reward_request");
  cfg.add_message_type<reward_result>("troupe::reward_result");
  cfg.add_message_type<std::map<std::string, double>>("troupe::f64_map");
  cfg.add_message_type<gen_request>("troupe::gen_request");
  cfg.add_message_type<gen_result>("troupe::gen_result");
  cfg.add_message_type<rollout_batch>("troupe::rollout_batch");
  cfg.add_message_type<sft_batch>("troupe::sft_batch");
  cfg.add_message_type<token_rows>("troupe::token_rows");
  cfg.add_message_type<worker_facts>("troupe::worker_facts");
  // weight_update is not registered: it is an in-process handle (weights/weight_sync.hpp)
  // that CAF passes by reference-counted pointer and never serializes.
}

}  // namespace troupe
