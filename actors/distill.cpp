#include "actors/distill.hpp"

#include <chrono>
#include <cstdio>

#include "actors/atoms.hpp"
#include "actors/generator_actor.hpp"
#include "actors/offline_run.hpp"
#include "core/hash.hpp"
#include "core/progress.hpp"
#include "core/stop.hpp"
#include "environments/arithmetic.hpp"

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

std::string fixed(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", v);
  return buf;
}

// Samples of one prompt set: the prompts' ids and one result per (prompt, sample).
struct samples {
  std::vector<task> tasks;
  std::vector<std::vector<std::int32_t>> prompts;  // per task
  std::vector<gen_result> results;                 // task-major, per_task each
  std::int64_t per_task = 1;
};

class distill_run {
 public:
  explicit distill_run(experiment_context& ctx) : ctx_(ctx), cfg_(ctx.config), co_(ctx) {}
  experiment_outcome run();

 private:
  void setup();
  samples sample(const caf::actor& generator, std::vector<task> tasks, std::int64_t per_task, double temperature,
                 std::uint64_t salt);
  double accuracy(const samples& s) const;
  token_rows rows_of(const samples& s) const;
  std::map<std::string, double> step(std::int64_t step);
  std::map<std::string, double> evaluate(std::int64_t step);
  void publish();

  experiment_context& ctx_;
  const experiment_config& cfg_;
  offline_coordinator co_;
  offline_policy student_;
  std::unique_ptr<arithmetic_tasks> tasks_;
  caf::actor trainer_, student_gen_, teacher_gen_;
  std::int64_t cursor_ = 0;
  double teacher_accuracy_ = 0;
};

void distill_run::setup() {
  const auto& d = cfg_.distill;
  student_ = make_offline_policy(cfg_, d.init_from);
  auto teacher = make_offline_policy(cfg_, d.teacher);        // scores, in the trainer
  auto teacher_copy = make_offline_policy(cfg_, d.teacher);   // answers, in its generator
  tasks_ = std::make_unique<arithmetic_tasks>(arithmetic_options::parse(cfg_.env.options),
                                              static_cast<std::uint64_t>(cfg_.run.seed));
  ctx_.out << "distill: student " << student_.model->config().hidden_size << " wide, "
           << student_.model->config().num_hidden_layers << " layers; teacher "
           << teacher.model->config().hidden_size << " wide, " << teacher.model->config().num_hidden_layers
           << " layers, from " << d.teacher << '\n';
  offline_trainer_options o;
  o.objective = offline_objective::distill;
  o.trainer = cfg_.trainer;
  o.teacher = teacher.model;
  o.distill = d.loss;
  o.pad_id = *student_.tok->pad_id();
  trainer_ = spawn_offline_trainer_actor(ctx_.sys, student_.model, o);
  causal_lm gen_copy(student_.model->config());
  gen_copy->to(student_.model->device(), student_.model->dtype());
  student_gen_ = spawn_generator(ctx_.sys, gen_copy, student_.tok, 0);
  teacher_gen_ = spawn_generator(ctx_.sys, teacher_copy.model, student_.tok, 0);
  publish();
}

void distill_run::publish() {
  auto update = co_.ask<weight_update>(trainer_, weights_atom::value);
  co_.ask<std::int64_t>(student_gen_, weights_atom::value, update);
}

samples distill_run::sample(const caf::actor& generator, std::vector<task> tasks, std::int64_t per_task,
                            double temperature, std::uint64_t salt) {
  samples s;
  s.tasks = std::move(tasks);
  s.per_task = per_task;
  std::vector<gen_request> reqs;
  for (std::size_t i = 0; i < s.tasks.size(); ++i) {
    auto ex = tokenize_example(*student_.tok, student_.tokenize, {{"user", s.tasks[i].prompt}}, false, "\n", s.tasks[i].id);
    s.prompts.push_back(ex.example.prompt);
    for (std::int64_t g = 0; g < per_task; ++g) {
      gen_request r;
      r.prompt = ex.example.prompt;
      r.max_new_tokens = cfg_.distill.max_new_tokens;
      r.temperature = temperature;
      r.stop_strings = {"\n"};
      r.seed = splitmix64(static_cast<std::uint64_t>(cfg_.run.seed) ^
                          splitmix64(salt + i * 1000003ULL + static_cast<std::uint64_t>(g)));
      reqs.push_back(r);
    }
  }
  s.results = co_.ask<std::vector<gen_result>>(generator, generate_atom::value, std::move(reqs));
  return s;
}

double distill_run::accuracy(const samples& s) const {
  arithmetic_env env(cfg_.env.options);
  double correct = 0;
  for (std::size_t i = 0; i < s.results.size(); ++i) {
    env.reset(s.tasks[i / static_cast<std::size_t>(s.per_task)]);
    correct += env.step(s.results[i].text).rewards["correct"] > 0 ? 1 : 0;
  }
  return s.results.empty() ? 0.0 : correct / static_cast<double>(s.results.size());
}

// Prompt + completion rows, the completion trained; empty completions are left out.
token_rows distill_run::rows_of(const samples& s) const {
  std::vector<tokenized_example> ex;
  for (std::size_t i = 0; i < s.results.size(); ++i) {
    if (s.results[i].tokens.empty()) continue;
    ex.push_back({s.prompts[i / static_cast<std::size_t>(s.per_task)], s.results[i].tokens});
  }
  return pad_examples(ex);
}

std::map<std::string, double> distill_run::step(std::int64_t step) {
  const auto& d = cfg_.distill;
  const auto t0 = clock_type::now();
  std::vector<task> tasks;
  for (std::int64_t i = 0; i < d.prompts_per_step; ++i) tasks.push_back(tasks_->at(split::train, cursor_++));
  auto s = sample(student_gen_, std::move(tasks), d.samples_per_prompt, d.temperature,
                  0xd157ULL + static_cast<std::uint64_t>(step) * 7919);
  const double generate_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  auto rows = rows_of(s);
  std::map<std::string, double> m;
  if (!rows.ids.empty()) m = co_.ask<std::map<std::string, double>>(trainer_, train_atom::value, std::move(rows));
  publish();
  m["train/accuracy"] = accuracy(s);
  m["time/generate_s"] = generate_s;
  m["time/step_s"] = std::chrono::duration<double>(clock_type::now() - t0).count();
  co_.log(step, m);
  return m;
}

std::map<std::string, double> distill_run::evaluate(std::int64_t step) {
  std::vector<task> tasks;
  for (std::int64_t i = 0; i < cfg_.distill.eval_prompts; ++i) tasks.push_back(tasks_->at(split::eval, i));
  if (step == 0) teacher_accuracy_ = accuracy(sample(teacher_gen_, tasks, 1, 0.0, 0xe7a1));
  auto greedy = sample(student_gen_, tasks, 1, 0.0, 0xe7a1);
  std::map<std::string, double> m;
  auto rows = rows_of(greedy);
  if (!rows.ids.empty()) m = co_.ask<std::map<std::string, double>>(trainer_, eval_atom::value, std::move(rows));
  m["eval/student_accuracy"] = accuracy(greedy);
  m["eval/teacher_accuracy"] = teacher_accuracy_;
  co_.log(step, m);
  ctx_.out << "eval at step " << step << ": student accuracy " << fixed(m["eval/student_accuracy"])
           << " (teacher " << fixed(teacher_accuracy_) << "), KL to the teacher: forward "
           << fixed(m["distill/eval_forward_kl"]) << ", reverse " << fixed(m["distill/eval_reverse_kl"]) << '\n';
  return m;
}

experiment_outcome distill_run::run() {
  auto stop_all = [&] {
    for (auto* a : {&trainer_, &student_gen_, &teacher_gen_}) co_.stop(*a);
  };
  return run_guarded(
    [&] {
      experiment_outcome out;
      setup();
      const auto& d = cfg_.distill;
      const auto first = evaluate(0);
      auto last = first;
      progress bar("distill", std::max<std::int64_t>(1, d.steps), parse_progress_style(cfg_.system.progress), ctx_.out);
      std::int64_t i = 0;
      for (; i < d.steps && !stop_requested(); ++i) {
        auto m = step(i);
        if (d.eval_every > 0 && (i + 1) % d.eval_every == 0 && i + 1 < d.steps) last = evaluate(i + 1);
        if (d.checkpoint_every > 0 && (i + 1) % d.checkpoint_every == 0 && i + 1 < d.steps) co_.checkpoint(trainer_, i + 1);
        bar.update(i + 1, {{"loss", m["distill/loss"]}, {"acc", m["train/accuracy"]},
                           {"eval_acc", last["eval/student_accuracy"]}});
      }
      bar.finish();
      last = evaluate(i);
      co_.checkpoint(trainer_, i);
      out.status = stop_requested() ? "stopped" : "finished";
      out.message = "distill: " + std::to_string(i) + " steps, student accuracy " +
                    fixed(first.at("eval/student_accuracy")) + " -> " + fixed(last.at("eval/student_accuracy")) +
                    " (teacher " + fixed(teacher_accuracy_) + ")";
      return out;
    },
    stop_all);
}

}  // namespace

void validate_distill(const experiment_config& cfg) {
  const auto& d = cfg.distill;
  if (!cfg.policy.path.empty())
    throw input_error("policy.path: the distill experiment trains small models built from troupe config for now; "
                      "leave policy.path empty (distill.init_from starts the student from a checkpoint)");
  if (d.teacher.empty())
    throw input_error("distill.teacher: name the teacher's checkpoint directory (e.g. an sft run's "
                      "checkpoints/step_001500)");
  if (cfg.env.name != "arithmetic")
    throw input_error("env.name: the distill experiment draws prompts from the arithmetic generator for now; "
                      "set env.name: arithmetic");
  arithmetic_options::parse(cfg.env.options);
  cfg.trainer.validate("trainer");
  small_model_config(cfg.policy, 2);
  const auto vocab = static_cast<std::int64_t>(make_offline_tokenizer(cfg).tok->vocab_size());
  try {
    d.loss.validate(vocab);
  } catch (const input_error& e) {
    throw input_error(std::string("distill.loss (a vocabulary of ") + std::to_string(vocab) + " ids): " + e.what());
  }
}

experiment_outcome run_distill(experiment_context& ctx) {
  distill_run run(ctx);
  return run.run();
}

}  // namespace troupe
