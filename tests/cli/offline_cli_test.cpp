// The sft and dpo experiments as a user runs them: tiny runs of the examples through
// the real binary that leave their metrics and checkpoints in the store, and data or
// settings refused before a run directory exists.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/store.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

namespace fs = std::filesystem;

struct cli_result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

cli_result troupe(const testing::temp_dir& cwd, const std::string& args) {
  const std::string out = cwd / ".out", err = cwd / ".err";
  const std::string cmd = "cd '" + cwd.path().string() + "' && '" TROUPE_BINARY "' " + args + " >'" + out + "' 2>'" +
                          err + "' </dev/null";
  const int status = std::system(cmd.c_str());
  cli_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

const std::string examples_dir = std::string(TROUPE_SOURCE_DIR) + "/examples/";
// A tiny policy so that a run takes a second.
const std::string tiny =
  " policy.hidden_size=16 policy.intermediate_size=32 policy.num_attention_heads=2 policy.num_key_value_heads=1"
  " system.progress=log";

TEST(offline_cli, sft_run_records_train_and_eval_loss_tokens_per_s_and_checkpoints) {
  testing::temp_dir dir;
  auto r = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' run.name=s sft.steps=6 sft.eval_every=4 "
                       "sft.checkpoint_every=4 data.train_examples=200 data.eval_examples=20" + tiny);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("sft 6/6"), std::string::npos) << r.out;
  auto store = run_store::open(dir / "runs/s/store.sqlite", store_mode::read_only);
  EXPECT_EQ(store.info().status, "finished");
  for (const char* name : {"sft/loss", "sft/grad_norm", "sft/lr", "sft/tokens_per_s", "sft/rows", "time/step_s"})
    EXPECT_EQ(store.metrics(name).size(), 6u) << name;
  auto eval = store.metrics("sft/eval_loss");
  ASSERT_EQ(eval.size(), 3u) << "at step 0, every 4 steps and at the end";
  EXPECT_EQ(eval[0].step, 0);
  EXPECT_EQ(eval[1].step, 4);
  EXPECT_EQ(eval[2].step, 6);
  EXPECT_LT(eval[2].value, eval[0].value);
  auto ckpts = store.checkpoints();
  ASSERT_EQ(ckpts.size(), 2u);
  EXPECT_EQ(ckpts[1].path, "checkpoints/step_000006");
  for (const char* f : {"config.json", "model.safetensors", "trainer_state.pt"})
    EXPECT_TRUE(fs::exists(dir / ("runs/s/" + ckpts[1].path + "/" + f))) << f;
}

TEST(offline_cli, sft_reads_a_jsonl_file_padded_or_packed) {
  testing::temp_dir dir;
  std::string lines;
  for (int i = 0; i < 40; ++i)
    lines += "{\"prompt\": \"" + std::to_string(i) + "+1=\", \"response\": \"" + std::to_string(i + 1) + "\\n\"}\n";
  dir.write("d.jsonl", lines);
  for (const char* packing : {"true", "false"}) {
    auto r = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' run.name=j" + packing +
                         " data.generate=\"''\" data.path=d.jsonl data.eval_fraction=0.2 sft.steps=2 data.packing=" +
                         packing + tiny);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    auto store = run_store::open(dir / ("runs/j" + std::string(packing) + "/store.sqlite"), store_mode::read_only);
    EXPECT_EQ(store.metrics("sft/eval_loss").size(), 2u);
  }
}

TEST(offline_cli, a_bad_data_line_is_named_by_file_and_line_before_a_run_exists) {
  testing::temp_dir dir;
  dir.write("d.jsonl", "{\"prompt\": \"1+1=\", \"response\": \"2\"}\n{\"prompt\": \"1+2=\"}\n");
  auto r = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' data.generate=\"''\" data.path=d.jsonl" + tiny);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("d.jsonl:2: missing \"response\""), std::string::npos) << r.err;
  dir.write("p.jsonl", "{\"prompt\": \"1+1=\", \"chosen\": \"2\", \"rejected\": \"x!\"}\n");
  r = troupe(dir, "run '" + examples_dir + "dpo_arithmetic.yaml' data.generate=\"''\" data.path=p.jsonl" + tiny);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("p.jsonl:1 (rejected): the response: "), std::string::npos) << r.err;
  r = troupe(dir, "run '" + examples_dir + "dpo_arithmetic.yaml' data.packing=true" + tiny);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("data.packing"), std::string::npos) << r.err;
  r = troupe(dir, "run '" + examples_dir + "dpo_arithmetic.yaml' dpo.loss.preference_loss=hinge" + tiny);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("dpo.loss.preference_loss"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "runs")) << "nothing is created for data or settings that are refused";
}

TEST(offline_cli, dpo_run_warm_starts_then_records_preference_metrics_train_and_held_out) {
  testing::temp_dir dir;
  auto r = troupe(dir, "run '" + examples_dir + "dpo_arithmetic.yaml' run.name=d sft.steps=3 dpo.steps=4 "
                       "dpo.eval_every=2 data.train_examples=100 data.eval_examples=10" + tiny);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("sft 3/3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dpo 4/4"), std::string::npos) << r.out;
  auto store = run_store::open(dir / "runs/d/store.sqlite", store_mode::read_only);
  EXPECT_EQ(store.info().status, "finished");
  EXPECT_EQ(store.metrics("sft/loss").size(), 3u);
  for (const char* name : {"dpo/loss", "dpo/accuracy", "dpo/reward_margin", "dpo/logps_chosen", "dpo/logps_rejected",
                           "dpo/rewards_chosen_mean", "dpo/rewards_rejected_mean", "dpo/grad_norm", "dpo/tokens_per_s"})
    EXPECT_EQ(store.metrics(name).size(), 4u) << name;
  auto acc = store.metrics("dpo/eval_accuracy");
  ASSERT_EQ(acc.size(), 3u) << "at step 0, every 2 steps and at the end";
  EXPECT_EQ(acc[0].value, 0.0) << "policy = reference at the start";
  for (const char* name : {"dpo/eval_loss", "dpo/eval_reward_margin", "dpo/eval_logps_chosen", "dpo/eval_logps_accuracy"})
    EXPECT_EQ(store.metrics(name).size(), 3u) << name;
  ASSERT_EQ(store.checkpoints().size(), 1u);
  // A dpo run can start from that checkpoint (and needs no warm start then).
  r = troupe(dir, "run '" + examples_dir + "dpo_arithmetic.yaml' run.name=d2 sft.steps=0 dpo.steps=1 "
                  "data.train_examples=20 data.eval_examples=4 dpo.init_from=runs/d/checkpoints/step_000004" + tiny);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("from runs/d/checkpoints/step_000004"), std::string::npos) << r.out;
}

TEST(offline_cli, distill_run_samples_scores_with_the_teacher_and_reports_kl_and_both_accuracies) {
  testing::temp_dir dir;
  // A teacher trained by troupe: a tiny sft run's final checkpoint.
  auto r = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' run.name=t sft.steps=2 "
                       "data.train_examples=100 data.eval_examples=4" + tiny);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = troupe(dir, "run '" + examples_dir + "distill_arithmetic.yaml' run.name=d distill.teacher=runs/t/checkpoints/step_000002 "
                  "distill.steps=3 distill.eval_every=2 distill.prompts_per_step=4 distill.eval_prompts=6" + tiny);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("distill 3/3"), std::string::npos) << r.out;
  auto store = run_store::open(dir / "runs/d/store.sqlite", store_mode::read_only);
  EXPECT_EQ(store.info().status, "finished");
  for (const char* name : {"distill/loss", "distill/forward_kl", "distill/reverse_kl", "train/accuracy", "time/step_s"})
    EXPECT_EQ(store.metrics(name).size(), 3u) << name;
  for (const char* name : {"eval/student_accuracy", "eval/teacher_accuracy", "distill/eval_forward_kl"})
    EXPECT_EQ(store.metrics(name).size(), 3u) << name << ": at step 0, every 2 steps and at the end";
  EXPECT_EQ(store.checkpoints().size(), 1u);
  r = troupe(dir, "run '" + examples_dir + "distill_arithmetic.yaml' distill.teacher=runs/t/checkpoints/step_000002 "
                  "distill.loss.topk_logits_k=100" + tiny);
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("distill.loss"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace troupe
