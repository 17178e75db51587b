// The episode driver: runs one episode of an environment against a policy, turn by
// turn, and returns its transcript. A plain class with no actors, so the coordinator,
// `troupe eval`, tests and examples drive episodes the same way.
//
//   episode_options o;
//   o.max_turns = 8;
//   episode_driver driver(o);
//   transcript tr = driver.run(*env, t, [&](const std::vector<turn>& so_far,
//                                           const std::vector<std::string>& stop) {
//     return generate(chat_template(so_far), stop);   // the policy's next action
//   });
//
// The transcript is what training needs from a multi-turn episode: the ordered turns,
// each with its role and exact text. Tokenize them in order with the chat template
// (observation turns as the user/environment role, action turns as the assistant), and
// mask every observation token out of the loss: only action turns were sampled from
// the policy. The action text is kept verbatim (including the stop string that ended
// it), so re-tokenizing reproduces what was generated. The episode's reward is
// `rewards`, the sum of every step's components.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "environments/environment.hpp"

namespace troupe {

enum class turn_role {
  observation,  // written by the environment (the task's prompt first); not trained on
  action,       // written by the policy; trained on
};
const char* turn_role_name(turn_role r);  // "observation", "action"

struct turn {
  turn_role role = turn_role::observation;
  std::string text;
  // observation: the stop strings for the action that follows it.
  std::vector<std::string> stop_strings;
  // action: the rewards and info of the step that judged it (empty for observations).
  std::map<std::string, double> rewards;
  std::map<std::string, std::string> info;
};

enum class episode_end {
  done,       // the environment said done
  max_turns,  // the driver's max_turns actions were taken first
  failed,     // the environment threw (a bad task, a bug); `error` says what
};
const char* episode_end_name(episode_end e);  // "done", "max_turns", "failed"

struct transcript {
  std::string task_id;
  // observation, action, observation, action, ..., action: it starts with the reset
  // observation and ends with the last action. The observation a final step returns
  // (ignored by contract) is not included.
  std::vector<turn> turns;
  std::map<std::string, double> rewards;      // the sum over steps of each component
  std::map<std::string, std::string> info;    // every step's info merged, later steps winning
  episode_end end = episode_end::done;
  std::string error;                          // when end == failed
  int actions = 0;                            // the number of action turns
};

// The policy: the conversation so far (ending with an observation) and the stop strings
// for its reply -> the action text.
using policy_fn = std::function<std::string(const std::vector<turn>& conversation,
                                            const std::vector<std::string>& stop_strings)>;

// The batched policy: one request per episode still running, all at the same turn,
// -> one action per request, in order. A coordinator answers them with one batched
// generate call per turn.
struct policy_request {
  std::size_t episode;                              // index into run_batch's tasks
  const std::vector<turn>* conversation;            // so far, ending with an observation
  const std::vector<std::string>* stop_strings;     // for the reply
};
using batch_policy_fn = std::function<std::vector<std::string>(const std::vector<policy_request>& requests)>;

struct episode_options {
  int max_turns = 16;  // actions per episode at most; a cap above the environment's own
};

class episode_driver {
 public:
  explicit episode_driver(episode_options opts = {});

  // Runs reset(t), then policy + step until done or max_turns. An exception from the
  // environment ends the transcript with end = failed (the turns so far are kept); one
  // from the policy propagates, as it is the caller's own.
  transcript run(environment& env, const task& t, const policy_fn& policy) const;

  // Runs len(tasks) episodes in lockstep, episode i on envs[i] (distinct instances):
  // each turn, one policy call for every episode still running. Same rules as run();
  // transcript i belongs to tasks[i]. Throws std::invalid_argument if the sizes differ
  // or the policy answers with a different number of actions than requests.
  std::vector<transcript> run_batch(const std::vector<environment*>& envs, const std::vector<task>& tasks,
                                    const batch_policy_fn& policy) const;

 private:
  episode_options opts_;
};

// The whole conversation as one text (observations and actions concatenated, in
// order), for logs and for policies that see plain text rather than chat turns.
std::string conversation_text(const std::vector<turn>& turns);

}  // namespace troupe
