// The sft, dpo and distill experiments as a user runs them: tiny runs of the examples
// through the real binary that leave their metrics and checkpoints in the store, data or
// settings refused before a run directory exists, runs killed with SIGKILL that resume
// to the numbers of an uninterrupted run, and Hugging Face policies.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/store.hpp"
#include "policies/checkpoint.hpp"
#include "tests/support/private_mount.hpp"
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
  r = troupe(dir, "run '" + examples_dir + "dpo_arithmetic.yaml' trainer.microbatch_tokens=256" + tiny);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("trainer.microbatch_tokens: dpo keeps each chosen / rejected pair"), std::string::npos) << r.err;
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
  ASSERT_EQ(store.checkpoints().size(), 2u);
  EXPECT_EQ(store.checkpoints()[0].path, "checkpoints/step_000000") << "the reference the warm start left";
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

// The example as a new user first runs it, before the teacher exists: the error says
// which run is missing and gives the command that makes it, from the config's header.
TEST(offline_cli, distill_without_its_teacher_says_how_to_make_the_teacher) {
  testing::temp_dir dir;
  const auto config = examples_dir + "distill_arithmetic.yaml";
  auto r = troupe(dir, "run '" + config + "'");
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("distill.teacher: 'runs/teacher/checkpoints/step_001500' is not a model directory (no "
                       "config.json): it is checkpoint step_001500 of the run runs/teacher, which does not exist "
                       "yet; train that run first, as " + config +
                       " says: troupe run examples/sft_arithmetic.yaml run.name=teacher\n"),
            std::string::npos)
    << r.err;
  EXPECT_FALSE(fs::exists(dir.path() / "runs")) << "refused before a run directory exists";
  // A run that exists without that checkpoint is named as such.
  fs::create_directories(dir.path() / "runs" / "teacher" / "checkpoints");
  r = troupe(dir, "run '" + config + "'");
  EXPECT_NE(r.err.find("of the run runs/teacher, which has not saved it; train that run first"), std::string::npos)
    << r.err;
}

// A disk that fills up mid-run (a small tmpfs in a mount namespace of its own): the
// checkpoint that does not fit fails the run with the reason, leaves no half-written
// directory, and the checkpoint before it resumes the run once there is space again.
// (Before the fix LibTorch's file writer threw from its destructor and the process
// ended in std::terminate, with a .tmp- directory left behind.)
TEST(offline_cli, a_full_disk_fails_the_run_cleanly_and_its_last_checkpoint_resumes_with_space) {
  testing::temp_dir dir;
  const std::string small = dir / "small", saved = dir / "saved";
  fs::create_directories(small);
  const std::string cfg = "'" + examples_dir + "sft_arithmetic.yaml' sft.steps=30 sft.checkpoint_every=10 "
                          "sft.eval_every=0 system.progress=log";
  // 8 MiB: the store and one checkpoint (about 4.7 MB: the weights and AdamW's state).
  const int rc = testing::run_with_private_tmpfs(small, /*read_only=*/false, 8 << 20, [&] {
    const std::string cmd = "cd '" + small + "' && '" TROUPE_BINARY "' run " + cfg + " run.name=full >'" +
                            (dir / "out.txt") + "' 2>&1; echo $? >'" + (dir / "code.txt") + "'; cp -a runs '" +
                            saved + "'";
    return std::system(cmd.c_str()) == 0 ? 0 : 3;
  });
  ASSERT_EQ(rc, 0) << "77: no mount namespaces here";
  const std::string out = slurp(dir / "out.txt");
  EXPECT_EQ(slurp(dir / "code.txt"), "1\n") << out;
  EXPECT_NE(out.find("checkpoint '" + small + "/runs/full/checkpoints/step_000020': cannot write"), std::string::npos)
    << out;
  EXPECT_NE(out.find("No space left on device"), std::string::npos) << out;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(saved + "/full/checkpoints")) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"step_000010"}) << "no half-written checkpoint stays behind";

  auto r = troupe(dir, "run --resume saved/full");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("from checkpoint checkpoints/step_000010"), std::string::npos) << r.out;
  auto store = run_store::open(saved + "/full/store.sqlite", store_mode::read_only);
  EXPECT_EQ(store.info().status, "finished");
  EXPECT_EQ(store.checkpoints().back().path, "checkpoints/step_000030");
}

// A checkpoint folder that turns read-only mid-run (a read-only bind mount over it, in a
// mount namespace of its own): the next checkpoint fails the run with the reason and
// the run is recorded as failed; the checkpoint before it resumes once the folder is
// writable again. The folder turns read-only while the run is stopped (SIGSTOP) after
// step 21, 19 steps before its next checkpoint, so the order does not depend on speed.
TEST(offline_cli, a_checkpoint_folder_that_turns_read_only_fails_the_run_and_the_last_checkpoint_resumes) {
  testing::temp_dir dir;
  const std::string work = dir / "work", saved = dir / "saved";
  fs::create_directories(work);
  const std::string cfg = "'" + examples_dir + "sft_arithmetic.yaml' sft.steps=40 sft.checkpoint_every=20 "
                          "sft.eval_every=0 system.progress=log";
  const int rc = testing::run_with_private_tmpfs(work, /*read_only=*/false, 64 << 20, [&] {
    const std::string ckpts = "runs/ro/checkpoints";
    const std::string cmd =
      "cd '" + work + "' && { '" TROUPE_BINARY "' run " + cfg + " run.name=ro 2>&1 & echo $! >pid; wait $!; echo $? >'" +
      (dir / "code.txt") + "'; } | tee '" + (dir / "out.txt") + "' | { grep -m1 -q '^sft 21/40' && kill -STOP $(cat pid) && " +
      "mount --bind " + ckpts + " " + ckpts + " && mount -o remount,bind,ro " + ckpts + " && kill -CONT $(cat pid); " +
      "cat >/dev/null; }; umount " + ckpts + "; cp -a runs '" + saved + "'";
    return std::system(cmd.c_str()) == 0 ? 0 : 3;
  });
  ASSERT_EQ(rc, 0) << "77: no mount namespaces here";
  const std::string out = slurp(dir / "out.txt");
  ASSERT_EQ(slurp(dir / "code.txt"), "1\n") << out;
  EXPECT_NE(out.find("checkpoint '" + work + "/runs/ro/checkpoints/step_000040': cannot create"), std::string::npos)
    << out;
  EXPECT_NE(out.find("Read-only file system"), std::string::npos) << out;
  {
    auto store = run_store::open(saved + "/ro/store.sqlite", store_mode::read_only);
    EXPECT_EQ(store.info().status, "failed");
    ASSERT_EQ(store.checkpoints().size(), 1u);
    EXPECT_EQ(store.checkpoints().back().path, "checkpoints/step_000020");
  }
  auto r = troupe(dir, "run --resume saved/ro");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("from checkpoint checkpoints/step_000020"), std::string::npos) << r.out;
  auto store = run_store::open(saved + "/ro/store.sqlite", store_mode::read_only);
  EXPECT_EQ(store.info().status, "finished");
  EXPECT_EQ(store.metrics("sft/loss").size(), 40u);
}

// Every metric but wall-clock figures (time/*, */tokens_per_s), keyed by name, in step
// order.
std::map<std::string, std::vector<std::pair<std::int64_t, double>>> numbers(const run_store& s) {
  std::map<std::string, std::vector<std::pair<std::int64_t, double>>> out;
  for (const auto& m : s.metrics()) {
    const bool timing = m.name.rfind("time/", 0) == 0 ||
                        (m.name.size() >= 12 && m.name.compare(m.name.size() - 12, 12, "tokens_per_s") == 0);
    if (!timing) out[m.name].push_back({m.step, m.value});
  }
  return out;
}

// Runs `cfg` twice: whole (runs/whole), and killed with SIGKILL as soon as its progress
// log shows `kill_at` (after a checkpoint, long before the end), then resumed
// (runs/killed). The two stores must then hold the same history, row for row.
void expect_resume_matches_an_uninterrupted_run(const testing::temp_dir& dir, const std::string& cfg,
                                                const std::string& kill_at) {
  auto whole = troupe(dir, "run " + cfg + " run.name=whole");
  ASSERT_EQ(whole.code, 0) << whole.out << whole.err;
  const std::string cmd = "cd '" + dir.path().string() + "' && ('" TROUPE_BINARY "' run " + cfg +
                          " run.name=killed >killed.txt 2>&1 & pid=$!; "
                          "until grep -qs '" + kill_at + "' killed.txt || ! kill -0 $pid 2>/dev/null; do sleep 0.01; done; "
                          "kill -KILL $pid; wait $pid; echo $? > code.txt)";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_EQ(slurp(dir / "code.txt"), "137\n") << "the run ended before it was killed:\n" << slurp(dir / "killed.txt");
  {
    auto killed = run_store::open(dir / "runs/killed/store.sqlite", store_mode::read_only);
    EXPECT_EQ(killed.info().status, "running") << "a killed run cannot record its end";
    ASSERT_FALSE(killed.checkpoints().empty()) << slurp(dir / "killed.txt");
  }
  auto r = troupe(dir, "run --resume runs/killed");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("from checkpoint checkpoints/step_0000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resumed at "), std::string::npos) << r.out;
  // The summary line (before "run finished: ...") reads the step-0 evaluation that the
  // killed process recorded, so it says what the uninterrupted run said.
  auto summary = [](const std::string& out) {
    const auto end = out.rfind("\nrun finished: ");
    return end == std::string::npos ? std::string() : out.substr(out.rfind('\n', end - 1) + 1, end - out.rfind('\n', end - 1) - 1);
  };
  EXPECT_FALSE(summary(whole.out).empty()) << whole.out;
  EXPECT_EQ(summary(r.out), summary(whole.out));

  auto want_store = run_store::open(dir / "runs/whole/store.sqlite", store_mode::read_only);
  auto got_store = run_store::open(dir / "runs/killed/store.sqlite", store_mode::read_only);
  EXPECT_EQ(got_store.info().status, "finished");
  const auto want = numbers(want_store), got = numbers(got_store);
  EXPECT_EQ(got.size(), want.size());
  for (const auto& [name, rows] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_EQ(got.at(name), rows) << name;
  }
  const auto cw = want_store.checkpoints(), cg = got_store.checkpoints();
  ASSERT_EQ(cg.size(), cw.size());
  for (std::size_t i = 0; i < cw.size(); ++i) EXPECT_EQ(cg[i].path, cw[i].path);
  bool event = false;
  for (const auto& e : got_store.events()) event |= e.kind == "resume";
  EXPECT_TRUE(event);
  // Finished: nothing to continue.
  EXPECT_EQ(troupe(dir, "run --resume runs/killed").code, 2);
}

TEST(offline_cli, sft_killed_with_sigkill_resumes_to_the_numbers_of_an_uninterrupted_run) {
  testing::temp_dir dir;
  // Padded batches of 4 over 40 examples: the resumed data order crosses epochs.
  expect_resume_matches_an_uninterrupted_run(
    dir,
    "'" + examples_dir + "sft_arithmetic.yaml' sft.steps=40 sft.batch_size=4 sft.microbatch_size=4 "
    "sft.eval_every=10 sft.checkpoint_every=4 data.packing=false data.train_examples=40 data.eval_examples=8" + tiny,
    "sft 6/40 ");
  if (HasFatalFailure()) return;
  auto s = run_store::open(dir / "runs/whole/store.sqlite", store_mode::read_only);
  EXPECT_EQ(s.metrics("sft/loss").size(), 40u);
  EXPECT_EQ(s.metrics("sft/eval_loss").size(), 5u);
}

TEST(offline_cli, dpo_killed_with_sigkill_resumes_to_the_numbers_of_an_uninterrupted_run) {
  testing::temp_dir dir;
  // A warm start, so the resumed trainer must restore its reference from checkpoint 0.
  expect_resume_matches_an_uninterrupted_run(
    dir,
    "'" + examples_dir + "dpo_arithmetic.yaml' sft.steps=3 sft.batch_size=8 dpo.steps=40 dpo.batch_size=4 "
    "trainer.microbatch_size=4 dpo.eval_every=10 dpo.checkpoint_every=4 data.train_examples=40 "
    "data.eval_examples=8" + tiny,
    "dpo 6/40 ");
  if (HasFatalFailure()) return;
  auto s = run_store::open(dir / "runs/whole/store.sqlite", store_mode::read_only);
  EXPECT_EQ(s.metrics("dpo/loss").size(), 40u);
  EXPECT_EQ(s.metrics("sft/loss").size(), 3u) << "the warm start ran once";
  EXPECT_EQ(s.checkpoints().front().path, "checkpoints/step_000000") << "the reference";
}

TEST(offline_cli, distill_killed_with_sigkill_resumes_to_the_numbers_of_an_uninterrupted_run) {
  testing::temp_dir dir;
  auto t = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' run.name=t sft.steps=2 "
                       "data.train_examples=100 data.eval_examples=4" + tiny);
  ASSERT_EQ(t.code, 0) << t.out << t.err;
  expect_resume_matches_an_uninterrupted_run(
    dir,
    "'" + examples_dir + "distill_arithmetic.yaml' distill.teacher=runs/t/checkpoints/step_000002 distill.steps=30 "
    "distill.prompts_per_step=4 distill.eval_every=10 distill.eval_prompts=6 distill.checkpoint_every=4" + tiny,
    "distill 6/30 ");
  if (HasFatalFailure()) return;
  auto s = run_store::open(dir / "runs/whole/store.sqlite", store_mode::read_only);
  EXPECT_EQ(s.metrics("train/accuracy").size(), 30u);
  EXPECT_EQ(s.metrics("eval/teacher_accuracy").size(), 4u);
}

// A Hugging Face model directory made here from the llama fixture (weights, config.json,
// tokenizer.json), with a tokenizer_config.json whose chat template is Llama 3's, so
// that policy.chat_format: auto finds llama3.
std::string hf_model(const testing::temp_dir& dir) {
  const auto src = fs::path(TROUPE_SOURCE_DIR) / "tests/fixtures/hf/llama";
  const fs::path dst = dir / "hf";
  fs::create_directories(dst);
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) fs::copy_file(src / f, dst / f);
  std::ofstream(dst / "tokenizer_config.json")
    << R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": )"
       R"("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n)"
       R"({{ m['content'] | trim }}<|eot_id|>{% endfor %}"})";
  return dst.string();
}

// The examples' data.max_length (64) is too short for the fixture's chat-formatted
// prompts (its tokenizer knows few words): 0 takes its context, 256 tokens.
const std::string hf_run =
  " system.progress=log data.generate=\"''\" data.eval_fraction=0.25 data.max_length=0 trainer.lr=1e-3";

TEST(offline_cli, sft_dpo_and_distill_train_a_hugging_face_policy_in_its_chat_format) {
  testing::temp_dir dir;
  const auto model = hf_model(dir);
  std::string chat, prefs;
  for (int i = 0; i < 16; ++i) {
    const auto a = std::to_string(i), b = std::to_string(i + 1);
    chat += R"({"messages": [{"role": "user", "content": ")" + a + R"(+1="}, {"role": "assistant", "content": ")" + b +
            "\"}]}\n";
    prefs += R"({"messages": [{"role": "user", "content": ")" + a + R"(+1="}], "chosen": ")" + b +
             R"(", "rejected": ")" + a + "\"}\n";
  }
  dir.write("chat.jsonl", chat);
  dir.write("prefs.jsonl", prefs);

  // SFT: the loss falls, and the chat format was found in the tokenizer_config.json.
  auto r = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' run.name=s policy.path=hf data.path=chat.jsonl "
                       "data.packing=false sft.steps=4 sft.batch_size=4 sft.lr=1e-3 sft.eval_every=0" + hf_run);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("policy: hf (LlamaForCausalLM, 2 layers, 64 wide, 320 ids), chat format llama3"), std::string::npos)
    << "auto found the template\n" << r.out;
  auto s = run_store::open(dir / "runs/s/store.sqlite", store_mode::read_only);
  auto loss = s.metrics("sft/eval_loss");
  ASSERT_EQ(loss.size(), 2u);
  EXPECT_LT(loss[1].value, loss[0].value);
  // The checkpoint is a model directory of its own: weights, config and tokenizer.
  const fs::path ckpt = dir / "runs/s/checkpoints/step_000004";
  auto saved = load_pretrained(ckpt.string());
  EXPECT_EQ(saved->config().vocab_size, 320);
  EXPECT_EQ(saved->config().hidden_size, 64);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "trainer_state.pt"})
    EXPECT_TRUE(fs::exists(ckpt / f)) << f;

  // DPO from that checkpoint as the policy itself, with a warm start on the chosen.
  r = troupe(dir, "run '" + examples_dir + "dpo_arithmetic.yaml' run.name=d policy.path=runs/s/checkpoints/step_000004 "
                  "data.path=prefs.jsonl sft.steps=2 sft.batch_size=4 dpo.steps=3 dpo.batch_size=4 "
                  "trainer.microbatch_size=4 dpo.eval_every=0" + hf_run);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto d = run_store::open(dir / "runs/d/store.sqlite", store_mode::read_only);
  EXPECT_EQ(d.metrics("sft/loss").size(), 2u);
  const auto dloss = d.metrics("dpo/loss");
  ASSERT_EQ(dloss.size(), 3u);
  EXPECT_NE(dloss[2].value, dloss[0].value);
  EXPECT_EQ(d.metrics("dpo/eval_accuracy").size(), 2u);
  load_pretrained(dir / "runs/d/checkpoints/step_000003");

  // Distill: the HF fixture as the student, the sft checkpoint (an HF directory) as the
  // teacher; chat-formatted arithmetic prompts.
  r = troupe(dir, "run '" + examples_dir + "distill_arithmetic.yaml' run.name=k policy.path=hf "
                  "distill.teacher=runs/s/checkpoints/step_000004 distill.steps=3 distill.prompts_per_step=2 "
                  "distill.eval_every=0 distill.eval_prompts=2 distill.max_new_tokens=4 system.progress=log");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto k = run_store::open(dir / "runs/k/store.sqlite", store_mode::read_only);
  const auto kl = k.metrics("distill/forward_kl");
  ASSERT_EQ(kl.size(), 3u);
  EXPECT_GT(kl[0].value, 0.0) << "student and teacher differ";
  EXPECT_EQ(k.metrics("eval/teacher_accuracy").size(), 2u);
  load_pretrained(dir / "runs/k/checkpoints/step_000003");

  // A teacher of another vocabulary (a char model's) is refused, naming it.
  auto t = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' run.name=c sft.steps=1 "
                       "data.train_examples=20 data.eval_examples=4" + tiny);
  ASSERT_EQ(t.code, 0) << t.out << t.err;
  r = troupe(dir, "run '" + examples_dir + "distill_arithmetic.yaml' policy.path=hf "
                  "distill.teacher=runs/c/checkpoints/step_000001 distill.steps=1 system.progress=off");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("distill.teacher: runs/c/checkpoints/step_000001: the checkpoint's vocabulary has 19 ids, "
                       "the model of policy.path 'hf' 320"),
            std::string::npos)
    << r.out << r.err;
  r = troupe(dir, "run '" + examples_dir + "sft_arithmetic.yaml' policy.path=nowhere" + tiny);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("policy.path: 'nowhere' is not a Hugging Face model directory"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace troupe
