#include "actors/message_types.hpp"

namespace troupe {

void register_message_types(caf::actor_system_config& cfg) {
  // add_message_type<T> also registers std::vector<T>.
  cfg.add_message_type<metric_row>("troupe::metric_row");
  cfg.add_message_type<rollout_row>("troupe::rollout_row");
  cfg.add_message_type<checkpoint_row>("troupe::checkpoint_row");
  cfg.add_message_type<event_row>("troupe::event_row");
  cfg.add_message_type<std::vector<std::int64_t>>("troupe::i64_vector");
}

}  // namespace troupe
