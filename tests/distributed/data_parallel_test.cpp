// Data-parallel training (algorithms/data_parallel*.hpp, distributed/data_parallel.hpp): two
// rank processes (data_parallel_rank) on 127.0.0.1 take the update one process takes
// on the whole batch, for every loss normalization; replicas stay identical, also after
// a restore; a lost or stalled rank makes the other fail with a clear error, no hang.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "distributed/data_parallel.hpp"
#include "algorithms/data_parallel_gloo.hpp"
#include "core/error.hpp"
#include "tests/distributed/data_parallel_actor_run.hpp"
#include "tests/support/temp_dir.hpp"

extern char** environ;

namespace troupe {
namespace {

using namespace troupe::testing;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One rank process (posix_spawn: a fresh process, no fork of this one's torch
// threads), its stderr in OUT_PREFIX.err. Its fd 3 is a pipe to the test, on which it
// reports:
//   - the port it reserved, when it is rank 0 started with port 0 (core/net.hpp
//     reserve_tcp_port, as the head does): `port`, for the other ranks. No port is
//     free-then-taken, so parallel tests cannot collide;
//   - "stalled" when it stops answering (STALL_AFTER): wait_until_stalled().
struct rank_process {
  pid_t pid = -1;
  int port = 0;
  int report = -1;  // the read end of the child's fd 3
  std::string prefix;
  rank_process(int port_, int rank, int world, const std::string& mode, int steps, const std::string& out_prefix,
               double timeout_s = 60, int stall_after = -1)
      : port(port_), prefix(out_prefix) {
    std::vector<std::string> args = {TROUPE_DP_RANK,        std::to_string(port),    std::to_string(rank),
                                     std::to_string(world), mode,                    std::to_string(steps),
                                     out_prefix,            std::to_string(timeout_s), std::to_string(stall_after)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string err = out_prefix + ".err";
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ends[2] = {-1, -1};
    if (::pipe2(ends, O_CLOEXEC) == 0) posix_spawn_file_actions_adddup2(&fa, ends[1], 3);
    if (::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) ADD_FAILURE() << "spawn failed";
    posix_spawn_file_actions_destroy(&fa);
    ::close(ends[1]);
    report = ends[0];
    if (port == 0) {  // rank 0 writes its port and closes the pipe
      const auto text = read_report("");
      port = text.empty() ? -1 : std::stoi(text);  // nothing: the rank failed first (see err())
    }
  }
  ~rank_process() {
    if (report >= 0) ::close(report);
  }
  // What the rank reports, until it contains `until` (empty: until the rank closes its end).
  std::string read_report(const std::string& until) {
    std::string text;
    char buf[64];
    for (ssize_t n; (until.empty() || text.find(until) == std::string::npos) && (n = ::read(report, buf, sizeof buf)) > 0;)
      text.append(buf, static_cast<std::size_t>(n));
    return text;
  }
  // Blocks until the rank reports that it stalled; false when it ended first.
  bool wait_until_stalled() { return read_report("stalled").find("stalled") != std::string::npos; }
  // The exit code (128 + signal when killed); -1 and the process killed when it has not
  // ended within `deadline` (a hang).
  int wait(std::chrono::seconds deadline = std::chrono::seconds(240)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  std::string err() const { return read_text(prefix + ".err"); }
};

std::vector<torch::Tensor> load_params(const std::string& path) {
  std::vector<torch::Tensor> p;
  torch::load(p, path);
  return p;
}

// max |a - b| / max |b| over all parameters together.
double relative_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, (a[i] - b[i]).abs().max().item<double>());
    scale = std::max(scale, b[i].abs().max().item<double>());
  }
  return diff / scale;
}

bool bitwise_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

constexpr int steps = 4;

// Two ranks against one process on the whole batch (microbatches of 3 there, 2 on each
// rank, so the microbatch boundaries differ too).
void two_ranks_equal_one(const std::string& mode) {
  testing::temp_dir dir;
  rank_process r0(0, 0, 2, mode, steps, dir / "r0");
  rank_process r1(r0.port, 1, 2, mode, steps, dir / "r1");
  ASSERT_EQ(r0.wait(), 0) << r0.err();
  ASSERT_EQ(r1.wait(), 0) << r1.err();
  const auto p0 = load_params(dir / "r0.params.pt"), p1 = load_params(dir / "r1.params.pt");
  EXPECT_TRUE(bitwise_equal(p0, p1)) << "the replicas differ";

  const bool kl = dp_loss_config(mode).reference_policy_kl_penalty != 0;
  trainer one(dp_model(torch::kFloat64, 1), dp_trainer_config(3), kl);
  train_step_result r;
  for (int s = 0; s < steps; ++s) r = dp_step(one, mode, s, 0, dp_rows);
  const auto expected = dp_params(one.policy());
  const double rel = relative_difference(p0, expected);
  std::cout << "[ info ] " << mode << ": 2 ranks vs 1 process, max relative parameter difference " << rel << "\n";
  EXPECT_LT(rel, 1e-9) << mode;
  EXPECT_GT(relative_difference(expected, dp_params(*std::make_unique<causal_lm>(dp_model(torch::kFloat64, 1)))), 1e-3)
      << "training moved the weights";

  // Rank 0 reports the global metrics of the last step, rank 1 the same.
  const auto m0 = dp_read_metrics(dir / "r0.metrics"), m1 = dp_read_metrics(dir / "r1.metrics");
  EXPECT_EQ(m0, m1);
  for (const auto& [k, v] : r.metrics) {
    if (k == "train/microbatches") continue;  // 2 + 2 on the ranks, 3 here
    if (k == "train/padding_fraction") continue;  // shards cut their microbatches to their own rows
    ASSERT_TRUE(m0.count(k)) << k;
    EXPECT_NEAR(m0.at(k), v, 1e-9 * std::max(1.0, std::abs(v))) << k;
  }
  EXPECT_EQ(m0.at("train/microbatches"), 4);
  EXPECT_EQ(m0.at("train/tokens"), r.metrics.at("train/tokens"));
  EXPECT_EQ(m0.at("train/sequences"), 6);  // two rows without a response token in the last batch
  EXPECT_EQ(m0.at("step"), steps);
}

TEST(data_parallel, two_ranks_equal_one_process_token_level) { two_ranks_equal_one("token"); }
TEST(data_parallel, two_ranks_equal_one_process_sequence_level) { two_ranks_equal_one("sequence"); }
TEST(data_parallel, two_ranks_equal_one_process_token_level_with_kl) { two_ranks_equal_one("token_kl"); }
TEST(data_parallel, two_ranks_equal_one_process_gspo_with_kl) { two_ranks_equal_one("gspo"); }

TEST(data_parallel, trainer_actors_from_spawn_trainer_rank_on_shards_equal_one_actor_on_the_batch) {
  testing::temp_dir dir;
  rank_process r0(0, 0, 2, "actor", 3, dir / "r0");
  rank_process r1(r0.port, 1, 2, "actor", 3, dir / "r1");
  ASSERT_EQ(r0.wait(), 0) << r0.err();
  ASSERT_EQ(r1.wait(), 0) << r1.err();
  const auto p0 = load_params(dir / "r0.params.pt"), p1 = load_params(dir / "r1.params.pt");
  EXPECT_TRUE(bitwise_equal(p0, p1)) << "the replicas differ";
  data_parallel_options alone;  // world_size 1: the whole batch, no group
  const auto one = dp_actor_run(alone, 3);
  // fp32 (the experiment's dtypes): sums in another order differ by rounding.
  const double rel = relative_difference(p0, one.params);
  std::cout << "[ info ] actor: 2 ranks vs 1 process (fp32), max relative parameter difference " << rel << "\n";
  EXPECT_LT(rel, 1e-5);
  const auto m0 = dp_read_metrics(dir / "r0.metrics");
  EXPECT_EQ(m0, dp_read_metrics(dir / "r1.metrics"));
  for (const char* k : {"train/loss", "train/grad_norm", "train/kl", "train/entropy", "train/tokens", "train/sequences"})
    EXPECT_NEAR(m0.at(k), one.metrics.at(k), 1e-4 * std::max(1.0, std::abs(one.metrics.at(k)))) << k;
}

TEST(data_parallel, a_non_finite_loss_on_one_rank_skips_the_step_on_every_rank) {
  testing::temp_dir dir;
  rank_process r0(0, 0, 2, "nan", 2, dir / "r0");
  rank_process r1(r0.port, 1, 2, "nan", 2, dir / "r1");
  ASSERT_EQ(r0.wait(), 0) << r0.err();
  ASSERT_EQ(r1.wait(), 0) << r1.err();
  const auto p0 = load_params(dir / "r0.params.pt");
  EXPECT_TRUE(bitwise_equal(p0, load_params(dir / "r1.params.pt")));
  for (const char* r : {"r0", "r1"}) {
    const auto m = dp_read_metrics(dir / (std::string(r) + ".metrics"));
    EXPECT_EQ(m.at("train/skipped"), 1) << r;
    EXPECT_EQ(m.at("train/skipped_steps"), 1) << r;
    EXPECT_EQ(m.count("train/grad_norm"), 0u) << r;  // not computed for a skipped step
  }
  // The weights are those after step 0 alone.
  trainer one(dp_model(torch::kFloat64, 1), dp_trainer_config(3), false);
  dp_step(one, "token", 0, 0, dp_rows);
  EXPECT_LT(relative_difference(p0, dp_params(one.policy())), 1e-9);
}

TEST(data_parallel, after_a_restore_a_rank_without_the_checkpoint_holds_rank_0s_state) {
  testing::temp_dir dir;
  rank_process r0(0, 0, 2, "restore", 3, dir / "r0");
  rank_process r1(r0.port, 1, 2, "restore", 3, dir / "r1");
  ASSERT_EQ(r0.wait(), 0) << r0.err();
  ASSERT_EQ(r1.wait(), 0) << r1.err();
  // Identical weights after one more step means identical weights, AdamW moments and
  // step counts (lr, bias correction) before it.
  EXPECT_TRUE(bitwise_equal(load_params(dir / "r0.params.pt"), load_params(dir / "r1.params.pt")));
  EXPECT_EQ(dp_read_metrics(dir / "r0.metrics").at("step"), 3);
  EXPECT_EQ(dp_read_metrics(dir / "r1.metrics").at("step"), 3);
  EXPECT_FALSE(std::filesystem::exists(dir / "r1.ckpt"));
}

TEST(data_parallel, a_killed_rank_makes_the_other_fail_with_the_collective_named) {
  testing::temp_dir dir;
  // A timeout far longer than the test waits: the loss must be noticed by the broken
  // connection, not by running out the clock.
  rank_process r0(0, 0, 2, "token", 6, dir / "r0", 600);
  rank_process r1(r0.port, 1, 2, "token", 6, dir / "r1", 600, 2);
  ASSERT_TRUE(r1.wait_until_stalled()) << r1.err();
  // Rank 1 finished step 1, so rank 0 has passed step 1's collectives too; whether it is
  // already waiting in step 2's first one or gets there after the kill, that one fails.
  ::kill(r1.pid, SIGKILL);
  EXPECT_EQ(r1.wait(), 128 + SIGKILL);
  ASSERT_EQ(r0.wait(std::chrono::seconds(120)), 4) << r0.err();
  const auto err = r0.err();
  EXPECT_NE(err.find("data-parallel rank 0 of 2: the all-reduce of loss normalizers failed"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dir / "r0.params.pt"));
}

TEST(data_parallel, a_stalled_rank_makes_the_other_fail_after_the_timeout) {
  testing::temp_dir dir;
  rank_process r0(0, 0, 2, "token", 4, dir / "r0", 3);
  rank_process r1(r0.port, 1, 2, "token", 4, dir / "r1", 3, 1);
  ASSERT_EQ(r0.wait(std::chrono::seconds(120)), 4) << r0.err();
  const auto err = r0.err();
  EXPECT_NE(err.find("data-parallel rank 0 of 2: the all-reduce of loss normalizers failed"), std::string::npos) << err;
  EXPECT_NE(err.find("timeout_s = 3.0 s"), std::string::npos) << err;
  ::kill(r1.pid, SIGKILL);
  r1.wait();
}

TEST(data_parallel, bad_options_are_input_errors) {
  data_parallel_options o;
  o.world_size = 2;
  o.rank = 2;
  EXPECT_THROW(join_data_parallel_group(o), input_error);
  o.rank = 0;
  o.bucket_bytes = 0;
  EXPECT_THROW(join_data_parallel_group(o), input_error);
}

TEST(shard_rollout_batch, contiguous_rows_the_first_shards_one_longer) {
  rollout_batch b;
  for (int i = 0; i < 7; ++i) {
    b.prompts.push_back({i});
    b.completions.push_back({i, i});
    b.gen_logprobs.push_back({-0.5f, -0.25f});
    b.advantages.push_back(i * 0.5);
  }
  const auto s = shard_rollout_batch(b, 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].prompts, (std::vector<std::vector<std::int32_t>>{{0}, {1}, {2}}));
  EXPECT_EQ(s[1].prompts, (std::vector<std::vector<std::int32_t>>{{3}, {4}}));
  EXPECT_EQ(s[2].advantages, (std::vector<double>{2.5, 3.0}));
  EXPECT_TRUE(s[2].versions.empty());
  EXPECT_TRUE(s[2].completion_masks.empty());
  EXPECT_THROW(shard_rollout_batch(b, 8), input_error);  // a rank would get nothing
  b.advantages.pop_back();
  EXPECT_THROW(shard_rollout_batch(b, 2), input_error);
}

// Rows of 1 + (2, 9, 3, 8, 1, 7, 4) tokens over 3 ranks, longest first to the lightest
// rank: 10 -> r0, 9 -> r1, 8 -> r2, 5 -> r2 (13), 4 -> r1 (13), 3 -> r0 (13), 2 -> r0 (15).
TEST(shard_rollout_batch, by_tokens_balances_the_ranks_and_keeps_batch_order_within_each) {
  const std::vector<int> lengths = {2, 9, 3, 8, 1, 7, 4};
  rollout_batch b;
  for (int i = 0; i < 7; ++i) {
    b.prompts.push_back({i});
    b.completions.push_back(std::vector<std::int32_t>(static_cast<std::size_t>(lengths[static_cast<std::size_t>(i)]), i));
    b.gen_logprobs.push_back(std::vector<float>(static_cast<std::size_t>(lengths[static_cast<std::size_t>(i)]), -0.5f));
    b.advantages.push_back(i * 0.5);
    b.versions.push_back(i);
  }
  const auto s = shard_rollout_batch_by_tokens(b, 3);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].prompts, (std::vector<std::vector<std::int32_t>>{{0}, {1}, {4}}));  // 3 + 10 + 2 = 15
  EXPECT_EQ(s[1].prompts, (std::vector<std::vector<std::int32_t>>{{2}, {3}}));       // 4 + 9 = 13
  EXPECT_EQ(s[2].prompts, (std::vector<std::vector<std::int32_t>>{{5}, {6}}));       // 8 + 5 = 13
  EXPECT_EQ(s[0].advantages, (std::vector<double>{0.0, 0.5, 2.0}));
  EXPECT_EQ(s[2].versions, (std::vector<std::int64_t>{5, 6}));
  EXPECT_EQ(s[1].completions[1].size(), 8u);
  EXPECT_THROW(shard_rollout_batch_by_tokens(b, 8), input_error);
  b.advantages.pop_back();
  EXPECT_THROW(shard_rollout_batch_by_tokens(b, 2), input_error);
}

TEST(loss_metrics, encode_decode_is_exact_and_merges_like_add) {
  loss_metrics a, b;
  a.add_mean("kl", 0.1, 3);
  a.add_sum("loss", 1.0 / 3.0);
  a.add_min("ratio_min", 0.7);
  b.add_mean("kl", 0.2, 5);
  b.add_max("ratio_max", 1.3);
  loss_metrics direct = a;
  direct.add(b);
  loss_metrics merged = loss_metrics::decode(a.encode());
  merged.add(loss_metrics::decode(b.encode()));
  EXPECT_EQ(merged.finalize(), direct.finalize());
  EXPECT_EQ(loss_metrics::decode(loss_metrics{}.encode()).finalize().size(), 0u);
  EXPECT_THROW(loss_metrics::decode("nonsense\n"), std::invalid_argument);
}

}  // namespace
}  // namespace troupe
