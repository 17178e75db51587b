#include "environments/episode.hpp"

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
  transcript tr;
  tr.task_id = t.id;
  observation obs;
  try {
    obs = env.reset(t);
  } catch (const std::exception& e) {
    tr.end = episode_end::failed;
    tr.error = e.what();
    return tr;
  }
  tr.turns.push_back({turn_role::observation, obs.text, obs.stop_strings, {}, {}});
  for (;;) {
    if (tr.actions >= opts_.max_turns) {
      tr.end = episode_end::max_turns;
      return tr;
    }
    turn act;
    act.role = turn_role::action;
    act.text = policy(tr.turns, tr.turns.back().stop_strings);
    ++tr.actions;
    step_result r;
    try {
      r = env.step(act.text);
    } catch (const std::exception& e) {
      tr.turns.push_back(std::move(act));
      tr.end = episode_end::failed;
      tr.error = e.what();
      return tr;
    }
    for (const auto& [k, v] : r.rewards) tr.rewards[k] += v;
    for (const auto& [k, v] : r.info) tr.info[k] = v;
    act.rewards = std::move(r.rewards);
    act.info = std::move(r.info);
    tr.turns.push_back(std::move(act));
    if (r.done) {
      tr.end = episode_end::done;
      return tr;
    }
    tr.turns.push_back({turn_role::observation, std::move(r.next.text), std::move(r.next.stop_strings), {}, {}});
  }
}

std::string conversation_text(const std::vector<turn>& turns) {
  std::string s;
  for (const auto& t : turns) s += t.text;
  return s;
}

}  // namespace troupe
