// Placement of the GRPO actors on a cluster (experiments/grpo/grpo_run.hpp).
#include "experiments/grpo/grpo_run.hpp"

namespace troupe::grpo_detail {

// The head waits for every worker of cluster.workers (docs/cluster.md); their actors are
// placed by the place_* functions below.
void grpo_run::join_cluster() {
  const auto& c = cfg_.cluster;
  head_ = std::make_unique<cluster_head>(ctx_.sys, c);
  head_->forward_events_to(ctx_.store);
  std::vector<std::string> names;
  std::string list;
  for (const auto& w : c.workers) {
    names.push_back(w.name);
    list += (list.empty() ? "" : ", ") + w.name;
  }
  // Flushed: whoever reads a pipe of this output (a launcher script) starts the workers
  // on this line, which names the port when cluster.listen gave 0.
  ctx_.out << "cluster: waiting for " << list << " (troupe worker --join " << head_->endpoint() << " --name NAME)"
           << std::endl;
  head_->wait_for(names);
  ctx_.out << "cluster: every worker joined\n";
}

// Where the head's links to workers meet: the weight links of remote generators and the
// trainer ranks' rendezvous listen on the head's cluster address.
std::string link_host(const cluster_section& c) {
  const auto host = parse_host_port(c.listen, "cluster.listen", true).host;
  if (host == "0.0.0.0" || host == "::")
    throw input_error("cluster.listen: '" + c.listen + "' is a wildcard; name the address workers reach the head at " +
                      "(weight links and the trainer ranks' rendezvous listen there too)");
  return host;
}

// Trainer ranks in all: the head's rank 0 and those of cluster.workers.
int trainer_world(const cluster_section& c) {
  int world = 1;
  for (const auto& w : c.workers) world += w.trainer_ranks;
  return world;
}

// Env hosts: the local one, or those of cluster.workers behind a pool that hands a lost
// worker's episodes to the others (actors/actor_pool.hpp).
env_host_actor grpo_run::place_env_hosts(const env_host_options& local) {
  std::vector<pool_member> members;
  if (head_)
    for (const auto& w : cfg_.cluster.workers)
      for (int i = 0; i < w.env_hosts; ++i) members.push_back({head_->spawn(w.name, "env_host", env_host_payload(cfg_.env)), w.name});
  if (members.empty()) return spawn_env_host(ctx_.sys, local);
  return spawn_env_pool(ctx_.sys, {std::move(members), ctx_.store});
}

// Generators: the local copy, or those of cluster.workers behind a generator pool, each
// with its own weight link (actors/policy/generator_pool.hpp).
generator_actor grpo_run::place_generators(causal_lm local_copy) {
  std::vector<generator_member> members;
  if (head_) {
    const auto host = link_host(cfg_.cluster);
    for (const auto& w : cfg_.cluster.workers)
      for (int i = 0; i < w.generators; ++i) {
        weight_link link;
        link.host = host;
        link.port = reserve_tcp_port(host);  // held until this process's link end serves it
        link.timeout_s = cfg_.cluster.spawn_timeout_s;
        link.transport = cfg_.weight_sync.transport;
        if (cfg_.weight_sync.codec == "fp8") link.fp8 = cfg_.weight_sync.fp8;  // the worker reads the same config
        members.push_back({{head_->spawn(w.name, "generator", remote_generator_payload(cfg_, link)), w.name}, link});
      }
  }
  if (members.empty()) return spawn_generator(ctx_.sys, local_copy, tok_, 0);
  return spawn_generator_pool(ctx_.sys, {std::move(members), ctx_.store});
}

// Data-parallel trainer ranks (docs/data-parallel.md): rank 0 is this process's trainer,
// ranks 1.. run on the workers that cluster.workers gives trainer_ranks. They meet when
// the first trainer message arrives.
void grpo_run::place_trainer_ranks(trainer_actor_options& rank0) {
  if (!head_) return;
  const int world = trainer_world(cfg_.cluster);
  if (world == 1) return;
  data_parallel_options dp;
  dp.world_size = world;
  dp.host = link_host(cfg_.cluster);
  dp.port = reserve_tcp_port(dp.host);  // held until rank 0 (this process) serves it
  rank0.data_parallel = dp;
  const auto config_text = write_config(cfg_);
  for (const auto& w : cfg_.cluster.workers)
    for (int i = 0; i < w.trainer_ranks; ++i) {
      auto o = dp;
      o.rank = static_cast<int>(ranks_.size()) + 1;
      // A worker's trainer rank answers the trainer's interface (distributed/data_parallel.hpp).
      ranks_.emplace_back(
        caf::actor_cast<trainer_actor>(head_->spawn(w.name, "trainer_rank", trainer_rank_payload_text(config_text, o))),
        w.name);
    }
}

}  // namespace troupe::grpo_detail
