#include "environments/episode.hpp"

#include <stdexcept>

#include "core/error.hpp"

namespace troupe {

const char* turn_role_name(turn_role r) { return r == turn_role::observation ? "observation" : "action"; }

const char* episode_end_name(episode_end e) {
  switch (e) {
    case episode_end::done: return "done";
    case episode_end::max_turns: return "max_turns";
    case episode_end::failed: return "failed";
  }
  return "?";
}

episode_driver::episode_driver(episode_options opts) : opts_(opts) {
  if (opts_.max_turns < 1) throw input_error("episode max_turns: must be at least 1, got " + std::to_string(opts_.max_turns));
}

transcript episode_driver::run(environment& env, const task& t, const policy_fn& policy) const {
  auto out = run_batch({&env}, {t}, [&](const std::vector<policy_request>& requests) {
    return std::vector<std::string>{policy(*requests[0].conversation, *requests[0].stop_strings)};
  });
  return std::move(out[0]);
}

namespace {

void fail(transcript& tr, const std::exception& e) {
  tr.end = episode_end::failed;
  tr.error = e.what();
}

}  // namespace

std::vector<transcript> episode_driver::run_batch(const std::vector<environment*>& envs, const std::vector<task>& tasks,
                                                  const batch_policy_fn& policy) const {
  if (envs.size() != tasks.size())
    throw std::invalid_argument("episode_driver::run_batch: " + std::to_string(envs.size()) + " environments for " +
                                std::to_string(tasks.size()) + " tasks");
  std::vector<transcript> out(tasks.size());
  std::vector<std::size_t> running;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    out[i].task_id = tasks[i].id;
    try {
      observation obs = envs[i]->reset(tasks[i]);
      out[i].turns.push_back({turn_role::observation, std::move(obs.text), std::move(obs.stop_strings), {}, {}});
      running.push_back(i);
    } catch (const std::exception& e) {
      fail(out[i], e);
    }
  }
  while (!running.empty()) {
    std::vector<policy_request> requests;
    for (std::size_t i : running) {
      transcript& tr = out[i];
      if (tr.actions >= opts_.max_turns) tr.end = episode_end::max_turns;
      else requests.push_back({i, &tr.turns, &tr.turns.back().stop_strings});
    }
    if (requests.empty()) break;
    std::vector<std::string> actions = policy(requests);
    if (actions.size() != requests.size())
      throw std::invalid_argument("episode_driver: the policy answered " + std::to_string(actions.size()) +
                                  " requests of " + std::to_string(requests.size()));
    running.clear();
    for (std::size_t k = 0; k < requests.size(); ++k) {
      const std::size_t i = requests[k].episode;
      transcript& tr = out[i];
      turn act;
      act.role = turn_role::action;
      act.text = std::move(actions[k]);
      ++tr.actions;
      step_result r;
      try {
        r = envs[i]->step(act.text);
      } catch (const std::exception& e) {
        tr.turns.push_back(std::move(act));
        fail(tr, e);
        continue;
      }
      for (const auto& [name, v] : r.rewards) tr.rewards[name] += v;
      for (const auto& [name, v] : r.info) tr.info[name] = v;
      act.rewards = std::move(r.rewards);
      act.info = std::move(r.info);
      tr.turns.push_back(std::move(act));
      if (r.done) {
        tr.end = episode_end::done;
        continue;
      }
      tr.turns.push_back({turn_role::observation, std::move(r.next.text), std::move(r.next.stop_strings), {}, {}});
      running.push_back(i);
    }
  }
  return out;
}

std::string conversation_text(const std::vector<turn>& turns) {
  std::string s;
  for (const auto& t : turns) s += t.text;
  return s;
}

}  // namespace troupe
