#include "experiments/offline/distill.hpp"

#include <chrono>
#include <cstdio>
#include <optional>

#include "actors/protocol/atoms.hpp"
#include "actors/policy/generator_actor.hpp"
#include "experiments/offline/offline_run.hpp"
#include "core/hash.hpp"
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
  samples sample(const generator_actor& generator, std::vector<task> tasks, std::int64_t per_task, double temperature,
                 std::uint64_t salt);
  double accuracy(const samples& s) const;
  token_rows rows_of(const samples& s) const;
  std::map<std::string, double> step(std::int64_t step);
  void evaluate(std::int64_t step);
  std::vector<task> eval_tasks() const;
  double teacher_accuracy();
  void publish();

  experiment_context& ctx_;
  const experiment_config& cfg_;
  offline_coordinator co_;
  offline_policy student_;
  std::unique_ptr<arithmetic_tasks> tasks_;
  trainer_actor trainer_;
  generator_actor student_gen_, teacher_gen_;
  std::int64_t cursor_ = 0;  // the next training prompt
  std::optional<double> teacher_accuracy_;
  std::optional<double> first_, last_;  // student accuracy at step 0 and lately (resumed: from the store)
};

void distill_run::setup() {
  const auto& d = cfg_.distill;
  student_ = make_offline_policy(cfg_, d.init_from);
  ctx_.out << describe_policy(cfg_.policy, student_) << '\n';
  auto teacher = make_offline_policy(cfg_, d.teacher);        // scores, in the trainer
  auto teacher_copy = make_offline_policy(cfg_, d.teacher);   // answers, in its generator
  tasks_ = std::make_unique<arithmetic_tasks>(arithmetic_options::parse(cfg_.env.options),
                                              static_cast<std::uint64_t>(cfg_.run.seed));
  ctx_.out << "distill: student " << student_.model->config().hidden_size << " wide, "
           << student_.model->config().num_hidden_layers << " layers; teacher "
           << teacher.model->config().hidden_size << " wide, " << teacher.model->config().num_hidden_layers
           << " layers, from " << d.teacher << '\n';
  trainer_actor_options o;
  o.objective = trainer_objective::distill;
  o.trainer = cfg_.trainer;
  o.teacher = teacher.model;
  o.distill = d.loss;
  o.pad_id = student_.pad_id;
  trainer_ = spawn_trainer_actor(ctx_.sys, student_.model, o);
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

samples distill_run::sample(const generator_actor& generator, std::vector<task> tasks, std::int64_t per_task,
                            double temperature, std::uint64_t salt) {
  samples s;
  s.tasks = std::move(tasks);
  s.per_task = per_task;
  std::vector<gen_request> reqs;
  for (std::size_t i = 0; i < s.tasks.size(); ++i) {
    s.prompts.push_back(encode_prompt(student_, s.tasks[i].prompt));
    for (std::int64_t g = 0; g < per_task; ++g) {
      gen_request r;
      r.prompt = s.prompts.back();
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

std::vector<task> distill_run::eval_tasks() const {
  std::vector<task> tasks;
  for (std::int64_t i = 0; i < cfg_.distill.eval_prompts; ++i) tasks.push_back(tasks_->at(split::eval, i));
  return tasks;
}

// The teacher's greedy accuracy on the held-out prompts, once per process (a resumed
// run computes the same number again: greedy decoding of fixed weights).
double distill_run::teacher_accuracy() {
  if (!teacher_accuracy_) teacher_accuracy_ = accuracy(sample(teacher_gen_, eval_tasks(), 1, 0.0, 0xe7a1));
  return *teacher_accuracy_;
}

void distill_run::evaluate(std::int64_t step) {
  const auto tasks = eval_tasks();
  auto greedy = sample(student_gen_, tasks, 1, 0.0, 0xe7a1);
  std::map<std::string, double> m;
  auto rows = rows_of(greedy);
  if (!rows.ids.empty()) m = co_.ask<std::map<std::string, double>>(trainer_, eval_atom::value, std::move(rows));
  m["eval/student_accuracy"] = accuracy(greedy);
  m["eval/teacher_accuracy"] = teacher_accuracy();
  co_.log(step, m);
  ctx_.out << "eval at step " << step << ": student accuracy " << fixed(m["eval/student_accuracy"])
           << " (teacher " << fixed(teacher_accuracy()) << "), KL to the teacher: forward "
           << fixed(m["distill/eval_forward_kl"]) << ", reverse " << fixed(m["distill/eval_reverse_kl"]) << '\n';
  if (step == 0) first_ = m["eval/student_accuracy"];
  last_ = m["eval/student_accuracy"];
}

experiment_outcome distill_run::run() {
  auto stop_all = [&] {
    co_.stop(trainer_), co_.stop(student_gen_), co_.stop(teacher_gen_);
  };
  return run_guarded(
    [&] {
      setup();
      const auto& d = cfg_.distill;
      offline_stages stages;
      stages.train = [&](std::int64_t i) { return step(i); };
      stages.figures = [&](const std::map<std::string, double>& m) {
        std::vector<std::pair<std::string, double>> f{{"loss", m.count("distill/loss") ? m.at("distill/loss") : 0.0},
                                                      {"acc", m.at("train/accuracy")}};
        if (last_) f.push_back({"eval_acc", *last_});
        return f;
      };
      stages.evaluate = [&](std::int64_t i) { evaluate(i); };
      stages.checkpoint = [&](std::int64_t i) { co_.checkpoint(trainer_, i); };
      // Step i samples the prompts after i * prompts_per_step with seeds of i: the
      // student's weights are all a resumed run needs.
      stages.restore = [&](const checkpoint_row& c) {
        const auto i = co_.restore(trainer_, c);
        cursor_ = i * d.prompts_per_step;
        publish();
        return i;
      };
      const auto steps = run_offline_loop(ctx_, {"distill", d.steps, d.eval_every, d.checkpoint_every}, stages);
      auto text = [](std::optional<double> v) { return v ? fixed(*v) : std::string("?"); };
      experiment_outcome out;
      out.status = stop_requested() ? "stopped" : "finished";
      if (!first_) first_ = recorded_metric(ctx_, "eval/student_accuracy", 0);  // resumed: evaluated earlier
      if (!last_) last_ = recorded_metric(ctx_, "eval/student_accuracy", -1);
      out.message = "distill: " + std::to_string(steps) + " steps, student accuracy " + text(first_) + " -> " +
                    text(last_) + " (teacher " + fixed(teacher_accuracy()) + ")";
      return out;
    },
    stop_all);
}

}  // namespace

void validate_distill(const experiment_config& cfg) {
  const auto& d = cfg.distill;
  validate_policy(cfg.policy);
  if (d.teacher.empty())
    throw input_error("distill.teacher: name the teacher's model directory (e.g. an sft run's "
                      "checkpoints/step_001500, or a Hugging Face model sharing the student's tokenizer)");
  check_model_dir("distill.teacher", d.teacher, cfg);
  if (!d.init_from.empty()) check_model_dir("distill.init_from", d.init_from, cfg);
  if (cfg.env.name != "arithmetic")
    throw input_error("env.name: the distill experiment draws prompts from the arithmetic generator for now; "
                      "set env.name: arithmetic");
  arithmetic_options::parse(cfg.env.options);
  cfg.trainer.validate("trainer");
  const auto vocab = load_policy_tokenizer(cfg).config.vocab_size;
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
