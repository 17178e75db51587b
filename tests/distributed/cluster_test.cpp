// The cluster: a head and workers over CAF's middleman on 127.0.0.1, some workers in
// this process (a second actor system), some real `troupe worker` processes.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "actors/protocol/atoms.hpp"
#include "distributed/cluster.hpp"
#include "distributed/cluster_secret.hpp"
#include "distributed/cluster_tls.hpp"
#include "actors/protocol/errors.hpp"
#include "experiments/experiment_config.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/system.hpp"
#include "core/config_tree.hpp"
#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"

extern char** environ;

namespace troupe {
namespace {

using namespace std::chrono_literals;

// One actor system, configured like troupe's.
struct node {
  node() {
    system_section s;
    s.threads = 2;
    configure_actor_system(cfg, s);
    sys = std::make_unique<caf::actor_system>(cfg);
  }
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
};

// run_worker on a thread of its own, in a second actor system of this process.
struct in_process_worker {
  explicit in_process_worker(worker_options o) : opts(std::move(o)) {
    thread = std::thread([this] {
      try {
        code = run_worker(*n.sys, opts);
      } catch (const std::exception& e) {
        error = e.what();
        code = -2;
      }
    });
  }
  ~in_process_worker() { join(); }
  void join() {
    if (thread.joinable()) thread.join();
  }
  node n;
  worker_options opts;
  std::thread thread;
  int code = -1;
  std::string error;
};

// A head and in-process workers; the head goes first, so that the workers it releases
// can be joined.
struct rig {
  explicit rig(const cluster_config& c) : head(std::make_unique<cluster_head>(*h.sys, c)) {}
  ~rig() {
    head.reset();
    workers.clear();
  }
  in_process_worker& add(worker_options o) {
    workers.push_back(std::make_unique<in_process_worker>(std::move(o)));
    return *workers.back();
  }
  node h;
  std::unique_ptr<cluster_head> head;
  std::vector<std::unique_ptr<in_process_worker>> workers;
};

worker_options joining(const cluster_head& head, const std::string& name) {
  worker_options o;
  o.head_host = "127.0.0.1";
  o.head_port = head.port();
  o.name = name;
  o.join_timeout_s = 10;
  return o;
}

// How a worker that must not get in ended: its code and error, and what this process
// wrote to stderr meanwhile (both sides' refusal lines).
struct refused_worker {
  int code = -1;
  std::string error;
  std::string err;
};

// Starts the worker `o` and waits on the head (for its join timeout), not on the worker:
// one that got in would serve until the head ends, so joining its thread would hang.
// nullopt, and a test failure saying `joined`, when it got in.
std::optional<refused_worker> expect_refused(rig& r, const worker_options& o, const std::string& joined) {
  ::testing::internal::CaptureStderr();
  auto& w = r.add(o);
  EXPECT_ANY_THROW(r.head->wait_for({o.name})) << joined;
  if (!r.head->workers().empty()) {
    ::testing::internal::GetCapturedStderr();
    return std::nullopt;
  }
  w.join();
  return refused_worker{w.code, w.error, ::testing::internal::GetCapturedStderr()};
}

cluster_config loopback(double join_timeout_s = 20) {
  cluster_config c;
  c.listen = "127.0.0.1:0";
  c.join_timeout_s = join_timeout_s;
  return c;
}

std::string arithmetic_payload() {
  env_section env;
  env.name = "arithmetic";
  env.pool = 2;
  return env_host_payload(env);
}

episode_result judge(caf::scoped_actor& self, const caf::actor& host, const std::string& action) {
  episode_result out;
  task t{"sum-1", "2+3=", {{"answer", "5"}}};
  self->request(host, 10s, judge_atom::value, episode_request{t, action})
    .receive([&](episode_result& r) { out = std::move(r); }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  return out;
}

std::string spawn_error(cluster_head& head, const std::string& worker, const std::string& kind,
                        const std::string& payload) {
  try {
    head.spawn(worker, kind, payload);
  } catch (const system_error& e) {
    return e.what();
  }
  return "";
}

// A real `troupe worker` process.
struct worker_process {
  // `stderr_file`: where the process's stderr goes (empty: this process's).
  worker_process(std::uint16_t port, const std::string& name, std::vector<std::string> extra = {},
                 const std::string& stderr_file = "") {
    std::vector<std::string> args = {TROUPE_BINARY, "worker", "--join", "127.0.0.1:" + std::to_string(port),
                                     "--name", name, "--timeout", "20", "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // posix_spawn, not fork: this process already runs actor systems.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!stderr_file.empty())
      posix_spawn_file_actions_addopen(&actions, 2, stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    EXPECT_EQ(::posix_spawn(&pid, TROUPE_BINARY, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
  }
  ~worker_process() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      wait();
    }
  }
  int wait() {  // the exit code, or 128 + signal
    int status = 0;
    if (pid <= 0 || ::waitpid(pid, &status, 0) != pid) return -1;
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  pid_t pid = -1;
};

// Waits for a callback's first call.
struct latch {
  void set(std::string v) {
    std::lock_guard<std::mutex> lock(m);
    if (value.empty()) value = std::move(v);
    cv.notify_all();
  }
  std::string get(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> lock(m);
    cv.wait_for(lock, timeout, [&] { return !value.empty(); });
    return value;
  }
  std::mutex m;
  std::condition_variable cv;
  std::string value;
};

TEST(cluster, a_worker_joins_and_judges_episodes_on_an_env_host_the_head_spawns) {
  rig r(loopback());
  auto& h = r.h;
  auto& head = r.head;
  EXPECT_EQ(head->endpoint(), "127.0.0.1:" + std::to_string(head->port()));
  auto& w = r.add(joining(*head, "w1"));
  const auto joined = head->wait_for({"w1"});
  ASSERT_EQ(joined.size(), 1u);
  EXPECT_EQ(joined[0].name, "w1");
  EXPECT_EQ(joined[0].pid, static_cast<std::int64_t>(::getpid()));
  EXPECT_GE(joined[0].cores, 1);
  EXPECT_FALSE(joined[0].host.empty());

  auto host = head->spawn("w1", "env_host", arithmetic_payload());
  ASSERT_TRUE(host);
  EXPECT_NE(host.node(), h.sys->node()) << "the env host runs in the worker's actor system";
  caf::scoped_actor self{*h.sys};
  auto right = judge(self, host, "5");
  EXPECT_FALSE(right.failed) << right.error;
  EXPECT_EQ(right.task_id, "sum-1");
  EXPECT_EQ(right.verdict.rewards["correct"], 1.0);
  auto wrong = judge(self, host, "6");
  EXPECT_EQ(wrong.verdict.rewards["correct"], 0.0);
  EXPECT_EQ(wrong.verdict.info["expected"], "5");
  std::string first;
  self->request(host, 10s, reset_atom::value, task{"sum-1", "2+3=", {{"answer", "5"}}})
    .receive([&](observation& o) { first = o.text; }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  EXPECT_NE(first.find("2+3="), std::string::npos) << first;

  head.reset();  // ends the run: the worker stops its actors and returns 0
  w.join();
  EXPECT_EQ(w.code, 0) << w.error;
}

TEST(cluster, reward_and_guardrail_kinds_answer_like_local_ones) {
  rig r(loopback());
  auto& head = *r.head;
  auto& h = r.h;
  r.add(joining(head, "w1"));
  head.wait_for({"w1"});
  reward_section weights;
  weights.weights = {"correct:2.0"};
  auto reward = head.spawn("w1", "reward", reward_payload(weights, -1.0));
  caf::scoped_actor self{*h.sys};
  reward_request req;
  req.env["correct"] = 1.0;
  double total = 0;
  self->request(reward, 10s, score_atom::value, req)
    .receive([&](reward_result& res) { total = res.total; }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  EXPECT_EQ(total, 2.0);
  req.failed = true;
  self->request(reward, 10s, score_atom::value, req)
    .receive([&](reward_result& res) { total = res.total; }, [&](caf::error& e) { ADD_FAILURE() << render(e); });
  EXPECT_EQ(total, -1.0) << "failure_reward travelled in the payload";

  guardrails_section g;
  g.max_output_chars = 3;
  auto rails = head.spawn("w1", "guardrails", guardrails_payload(g));
  std::vector<rail_verdict> verdicts;
  self->request(rails, 10s, check_atom::value, rail_stage::output, std::string("too long"))
    .receive([&](std::vector<rail_verdict>& v) { verdicts = std::move(v); },
             [&](caf::error& e) { ADD_FAILURE() << render(e); });
  ASSERT_EQ(verdicts.size(), 1u);
  EXPECT_EQ(verdicts[0].penalty, 1.0);
}

// Crashes its worker actor (a non-std exception) on the action "crash".
class crashing_env : public environment {
 public:
  explicit crashing_env(const environment_options&) {}
  observation reset(const task& t) override { return {t.prompt, {}}; }
  step_result step(const std::string& action) override {
    if (action == "crash") throw 42;
    return {};
  }
};
TROUPE_REGISTER_ENVIRONMENT("test_cluster_crashing", crashing_env, "crashes on 'crash'");

// Stands in for the store actor: keeps the event rows it gets.
struct event_log {
  std::mutex m;
  std::vector<event_row> rows;
  std::vector<event_row> snapshot() {
    std::lock_guard<std::mutex> lock(m);
    return rows;
  }
};

caf::behavior fake_store(caf::event_based_actor*, std::shared_ptr<event_log> log) {
  return {[log](event_atom, event_row& row) {
    std::lock_guard<std::mutex> lock(log->m);
    log->rows.push_back(std::move(row));
    return true;
  }};
}

TEST(cluster, events_of_remote_actors_reach_the_heads_store_with_the_workers_name) {
  rig r(loopback());
  auto log = std::make_shared<event_log>();
  auto store = r.h.sys->spawn(fake_store, log);
  r.head->forward_events_to(store);
  r.add(joining(*r.head, "w1"));
  r.head->wait_for({"w1"});
  env_section env;
  env.name = "test_cluster_crashing";
  env.pool = 1;
  auto host = r.head->spawn("w1", "env_host", env_host_payload(env));
  caf::scoped_actor self{*r.h.sys};
  EXPECT_TRUE(judge(self, host, "crash").failed);
  bool restart = false, joined = false;
  for (int i = 0; i < 100 && !restart; ++i) {
    std::this_thread::sleep_for(50ms);
    for (const auto& row : log->snapshot()) {
      if (row.kind == "worker_joined") joined = true;
      if (row.kind == "restart" && row.source.rfind("w1/", 0) == 0) restart = true;
    }
  }
  EXPECT_TRUE(joined);
  EXPECT_TRUE(restart) << "the env worker's restart, recorded in the head as w1/...";
  self->send_exit(store, caf::exit_reason::user_shutdown);
}

// The registry is published on the cluster address: a peer that connects without
// joining cannot write into the run's history.
TEST(cluster, events_from_a_node_that_has_not_joined_are_refused) {
  rig r(loopback());
  auto log = std::make_shared<event_log>();
  auto store = r.h.sys->spawn(fake_store, log);
  r.head->forward_events_to(store);
  node stranger;
  auto registry = caf::io::remote_actor(*stranger.sys, "127.0.0.1", r.head->port());
  ASSERT_TRUE(registry) << caf::to_string(registry.error());
  caf::scoped_actor self{*stranger.sys};
  caf::error refused;
  self->request(*registry, 10s, event_atom::value, event_row{1.0, "restart", "env", "forged"})
    .receive([](bool) { ADD_FAILURE() << "an event from a stranger was taken"; }, [&](caf::error& e) { refused = e; });
  EXPECT_NE(render(refused).find("only joined workers may record events"), std::string::npos) << render(refused);
  for (const auto& row : log->snapshot()) EXPECT_NE(row.message, "forged");
  caf::scoped_actor head_self{*r.h.sys};
  head_self->send_exit(store, caf::exit_reason::user_shutdown);
}

// Without TLS the head listens on loopback, where every user of the machine can
// connect: a worker joins only with the head's secret, which the head's user alone can
// read. A worker of that user finds it by itself.
TEST(cluster, without_tls_a_worker_needs_the_heads_join_secret) {
  std::string secret_file;
  {
    rig r(loopback());
    secret_file = r.head->secret_file();
    ASSERT_FALSE(secret_file.empty());
    struct stat st {};
    ASSERT_EQ(::stat(secret_file.c_str(), &st), 0) << secret_file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "readable by the head's user only";
    const auto secret = read_cluster_secret(secret_file);
    ASSERT_TRUE(secret.has_value());
    EXPECT_EQ(secret->size(), 64u);

    testing::temp_dir dir;
    auto wrong = joining(*r.head, "intruder");
    wrong.secret_file = dir.write("guess.secret", std::string(64, '0') + "\n");
    wrong.join_timeout_s = 1;
    auto& refused = r.add(wrong);
    refused.join();
    EXPECT_EQ(refused.code, -2);
    EXPECT_NE(refused.error.find("refused worker 'intruder': wrong join secret"), std::string::npos) << refused.error;

    auto none = joining(*r.head, "nosecret");
    none.secret_file = (dir.path() / "missing.secret").string();
    none.join_timeout_s = 1;
    auto& empty = r.add(none);
    empty.join();
    EXPECT_NE(empty.error.find("it showed no join secret"), std::string::npos) << empty.error;

    r.add(joining(*r.head, "w1"));  // the default: the head's own file
    EXPECT_EQ(r.head->wait_for({"w1"}).size(), 1u);
    EXPECT_EQ(r.head->workers().size(), 1u) << "only w1 joined";
  }
  EXPECT_FALSE(std::filesystem::exists(secret_file)) << "the head removes its secret when it ends";
}

TEST(cluster_secret, is_random_compared_whole_and_written_for_its_owner_only) {
  const auto a = make_cluster_secret(), b = make_cluster_secret();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(same_secret(a, a));
  EXPECT_FALSE(same_secret(a, b));
  EXPECT_FALSE(same_secret(a, a.substr(0, 63)));
  EXPECT_FALSE(same_secret("", a));
  testing::temp_dir dir;
  const std::string path = (dir.path() / "sub" / "s.secret").string();
  write_cluster_secret(path, a);
  EXPECT_EQ(read_cluster_secret(path), a);
  struct stat st {};
  ASSERT_EQ(::stat((dir.path() / "sub").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  write_cluster_secret(path, b);  // a later head on the same port replaces it
  EXPECT_EQ(read_cluster_secret(path), b);
  EXPECT_FALSE(read_cluster_secret((dir.path() / "none").string()).has_value());
}

TEST(cluster, wait_for_times_out_naming_the_missing_worker_and_the_joined_ones) {
  rig r(loopback(1.0));
  auto& head = *r.head;
  r.add(joining(head, "w1"));
  head.wait_for({"w1"});
  try {
    head.wait_for({"w1", "w2"});
    FAIL() << "w2 never joins";
  } catch (const input_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cluster.workers: w2 has not joined within cluster.join_timeout_s = 1.0 s"),
              std::string::npos)
      << what;
    EXPECT_NE(what.find("joined: w1"), std::string::npos) << what;
    EXPECT_NE(what.find("troupe worker --join " + head.endpoint()), std::string::npos) << what;
  }
}

TEST(cluster, spawn_errors_carry_the_workers_reason) {
  rig r(loopback());
  auto& head = *r.head;
  r.add(joining(head, "w1"));
  head.wait_for({"w1"});
  auto unknown = spawn_error(head, "w1", "telepathy", "");
  EXPECT_NE(unknown.find("worker w1: unknown kind 'telepathy' (it offers: env_host, guardrails, reward"),
            std::string::npos)
    << unknown;
  auto bad_env = spawn_error(head, "w1", "env_host", "name: no_such_env\n");
  EXPECT_NE(bad_env.find("kind 'env_host'"), std::string::npos) << bad_env;
  EXPECT_NE(bad_env.find("no_such_env"), std::string::npos) << bad_env;
  auto bad_yaml = spawn_error(head, "w1", "env_host", "pool: -3\n");
  EXPECT_NE(bad_yaml.find("pool: must be in [1, 4096], got -3"), std::string::npos) << bad_yaml;
  auto nobody = spawn_error(head, "w9", "env_host", "");
  EXPECT_NE(nobody.find("worker 'w9': it has not joined or was lost (joined: w1)"), std::string::npos) << nobody;
}

TEST(cluster, a_second_worker_with_a_taken_name_is_refused) {
  rig r(loopback());
  auto& head = *r.head;
  r.add(joining(head, "w1"));
  head.wait_for({"w1"});
  auto& second = r.add(joining(head, "w1"));
  second.join();
  EXPECT_EQ(second.code, -2);
  EXPECT_NE(second.error.find("a worker named 'w1' has already joined"), std::string::npos) << second.error;
}

TEST(cluster, a_non_loopback_address_without_tls_is_refused) {
  node h;
  auto c = loopback();
  c.listen = "0.0.0.0:0";
  try {
    cluster_head head(*h.sys, c);
    FAIL() << "listening on every interface without TLS";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("cluster.listen: '0.0.0.0:0' is not a loopback address"), std::string::npos)
      << e.what();
  }
  worker_options o;
  o.head_port = 7420;
  o.name = "w1";
  node wn;
  for (const char* head : {"10.1.2.3", "127.evil.invalid"}) {
    o.head_host = head;
    EXPECT_THROW(run_worker(*wn.sys, o), input_error) << head;
  }
}

TEST(cluster, a_killed_worker_process_is_reported_lost_and_a_finished_run_ends_the_others_cleanly) {
  node h;
  auto head = std::make_unique<cluster_head>(*h.sys, loopback());
  latch lost;
  head->on_worker_lost([&](const std::string& name) { lost.set(name); });
  worker_process victim(head->port(), "victim");
  worker_process survivor(head->port(), "survivor");
  const auto joined = head->wait_for({"victim", "survivor"});
  EXPECT_EQ(joined[0].pid, victim.pid);

  // A round trip through a real process first.
  auto host = head->spawn("victim", "env_host", arithmetic_payload());
  caf::scoped_actor self{*h.sys};
  EXPECT_EQ(judge(self, host, "5").verdict.rewards["correct"], 1.0);

  self->monitor(host);
  ::kill(victim.pid, SIGKILL);
  EXPECT_EQ(victim.wait(), 128 + SIGKILL);
  EXPECT_EQ(lost.get(30s), "victim");
  const auto left = head->workers();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].name, "survivor");
  // A monitor on an actor of the dead worker fires at once...
  bool down = false;
  self->receive([&](caf::down_msg& m) { down = m.reason == caf::exit_reason::remote_link_unreachable; },
                caf::after(10s) >> [] {});
  EXPECT_TRUE(down);
  // ...and a request to it fails at its timeout (CAF 0.17 drops messages to a dead
  // node's proxies) rather than hanging.
  bool failed = false;
  self->request(host, 1s, judge_atom::value, episode_request{task{"x", "1+1=", {{"answer", "2"}}}, "2"})
    .receive([&](episode_result&) {}, [&](caf::error&) { failed = true; });
  EXPECT_TRUE(failed);

  head.reset();
  EXPECT_EQ(survivor.wait(), 0) << "the head ended the run";
}

// --- TLS -----------------------------------------------------------------------------

std::string run_troupe(const std::string& args) {
  return std::string("'") + TROUPE_BINARY + "' " + args + " >/dev/null 2>&1";
}

TEST(cluster_tls, certs_from_troupe_cluster_certs_authenticate_head_and_worker) {
  testing::temp_dir dir;
  const std::string certs = dir / "certs";
  ASSERT_EQ(std::system(run_troupe("cluster certs '" + certs + "' --nodes head,w1").c_str()), 0);
  for (const char* f : {"ca.crt", "ca.key", "head.crt", "head.key", "w1.crt", "w1.key"})
    EXPECT_TRUE(std::filesystem::exists(certs + "/" + f)) << f;
  struct stat st {};
  ASSERT_EQ(::stat((certs + "/w1.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((certs + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto c = loopback();
  c.tls = {certs + "/head.crt", certs + "/head.key", certs + "/ca.crt", ""};
  rig r(c);
  auto& h = r.h;
  auto& head = r.head;
  auto o = joining(*head, "w1");
  o.tls = {certs + "/w1.crt", certs + "/w1.key", certs + "/ca.crt", ""};
  ::testing::internal::CaptureStderr();
  auto& w = r.add(o);
  head->wait_for({"w1"});
  auto host = head->spawn("w1", "env_host", arithmetic_payload());
  caf::scoped_actor self{*h.sys};
  EXPECT_EQ(judge(self, host, "5").verdict.rewards["correct"], 1.0);
  head.reset();
  w.join();
  EXPECT_EQ(w.code, 0) << w.error;
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err.find("refused"), std::string::npos) << "a clean run logs no refusal: " << err;
}

// A certificate the CA signed for one worker does not let its holder join as another:
// the head compares the joining name with the certificate of the connection it came in
// on. The rightful name still joins afterwards.
TEST(cluster_tls, a_worker_joining_under_another_name_than_its_certificates_is_refused) {
  testing::temp_dir dir;
  const std::string certs = dir / "certs";
  write_cluster_certs(certs, {"head", "w1", "w2"});
  auto c = loopback(3);
  c.tls = {certs + "/head.crt", certs + "/head.key", certs + "/ca.crt", ""};
  rig r(c);
  auto& head = *r.head;
  auto o = joining(head, "w2");
  o.tls = {certs + "/w1.crt", certs + "/w1.key", certs + "/ca.crt", ""};
  const auto impostor = expect_refused(r, o, "the impostor joined");
  if (!impostor) return;
  EXPECT_EQ(impostor->code, -2);
  EXPECT_NE(impostor->error.find("refused worker 'w2' from 127.0.0.1:"), std::string::npos) << impostor->error;
  EXPECT_NE(impostor->error.find("its certificate was issued for 'w1'"), std::string::npos) << impostor->error;
  EXPECT_NE(impostor->err.find("refused worker 'w2'"), std::string::npos) << "the head logs it: " << impostor->err;
  EXPECT_TRUE(head.workers().empty());

  auto rightful = joining(head, "w2");
  rightful.tls = {certs + "/w2.crt", certs + "/w2.key", certs + "/ca.crt", ""};
  r.add(rightful);
  head.wait_for({"w2"});
  ASSERT_EQ(head.workers().size(), 1u);
  EXPECT_EQ(head.workers()[0].name, "w2");
}

TEST(cluster_tls, a_worker_with_a_certificate_from_another_ca_is_refused_and_the_refusal_is_logged) {
  testing::temp_dir dir;
  const std::string certs = dir / "certs", other = dir / "other";
  write_cluster_certs(certs, {"head"});
  write_cluster_certs(other, {"intruder"});

  auto c = loopback();
  c.tls = {certs + "/head.crt", certs + "/head.key", certs + "/ca.crt", ""};
  rig r(c);
  auto& head = *r.head;
  latch refused;
  head.on_peer_refused([&](const std::string& line) { refused.set(line); });

  // The intruder trusts the head's CA (and its own, so that its own checks pass): the
  // head is the one that refuses.
  std::ofstream(dir / "both.crt") << std::ifstream(other + "/ca.crt").rdbuf() << std::ifstream(certs + "/ca.crt").rdbuf();
  auto o = joining(head, "intruder");
  o.tls = {other + "/intruder.crt", other + "/intruder.key", dir / "both.crt", ""};
  o.join_timeout_s = 2;
  ::testing::internal::CaptureStderr();
  auto& w = r.add(o);
  w.join();
  const std::string line = refused.get(10s);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(w.code, -2);
  EXPECT_NE(w.error.find("cannot reach the head"), std::string::npos) << w.error;
  EXPECT_NE(line.find("refused a connection from 127.0.0.1:"), std::string::npos) << line;
  EXPECT_NE(line.find("CN=intruder"), std::string::npos) << line;
  EXPECT_NE(err.find("troupe cluster: " + line), std::string::npos) << err;
  EXPECT_NE(line.find("failed verification"), std::string::npos) << line;
  EXPECT_TRUE(head.workers().empty());
}

// Every node certificate is signed by the cluster's CA, but only the head's may serve:
// a head that presents a worker's certificate (someone holding a worker's key, posing
// as the head) is refused by the joining worker.
TEST(cluster_tls, a_worker_certificate_cannot_serve_as_the_head) {
  testing::temp_dir dir;
  const std::string certs = dir / "certs";
  write_cluster_certs(certs, {"head", "w1", "w2"});
  auto c = loopback(3);
  c.tls = {certs + "/w1.crt", certs + "/w1.key", certs + "/ca.crt", ""};
  rig r(c);
  auto o = joining(*r.head, "w2");
  o.tls = {certs + "/w2.crt", certs + "/w2.key", certs + "/ca.crt", ""};
  o.join_timeout_s = 2;
  const auto w = expect_refused(r, o, "the worker joined a head with a worker's certificate");
  if (!w) return;
  EXPECT_EQ(w->code, -2);
  EXPECT_NE(w->error.find("cannot reach the head"), std::string::npos) << w->error;

  // The same worker joins the real head.
  auto h = loopback(3);
  h.tls = {certs + "/head.crt", certs + "/head.key", certs + "/ca.crt", ""};
  rig real(h);
  o.head_port = real.head->port();
  o.join_timeout_s = 10;
  real.add(o);
  EXPECT_EQ(real.head->wait_for({"w2"}).size(), 1u);
}

// One CA may issue several head certificates (one per cluster): a worker checks that the
// head's is issued for the name it expects (--head-name, default "head"), and refuses
// another head at once, saying whose certificate it saw.
TEST(cluster_tls, a_worker_refuses_a_head_certificate_issued_for_another_name) {
  testing::temp_dir dir;
  const std::string certs = dir / "certs";
  write_cluster_certs(certs, {"head", "w2"});
  write_cluster_certs(certs, {"lab-head"}, 825, "lab-head");  // the same CA, another head
  auto c = loopback(3);
  c.tls = {certs + "/lab-head.crt", certs + "/lab-head.key", certs + "/ca.crt", ""};
  rig r(c);
  auto o = joining(*r.head, "w2");
  o.tls = {certs + "/w2.crt", certs + "/w2.key", certs + "/ca.crt", ""};
  o.join_timeout_s = 60;  // refused at once, not after retrying until this
  const auto w = expect_refused(r, o, "the worker joined a head of another name");
  if (!w) return;
  EXPECT_EQ(w->code, -2);
  EXPECT_NE(w->error.find("refused the head at 127.0.0.1:" + std::to_string(r.head->port()) +
                          ": the head's certificate was issued for 'lab-head', not 'head'"),
            std::string::npos)
    << w->error;
  EXPECT_NE(w->err.find("failed: the head's certificate was issued for 'lab-head', not 'head'"), std::string::npos)
    << w->err;

  // Named, the same worker joins that head.
  o.head_name = "lab-head";
  r.add(o);
  EXPECT_EQ(r.head->wait_for({"w2"}).size(), 1u);
}

TEST(cluster_tls, a_troupe_worker_process_that_trusts_another_ca_refuses_the_head_and_both_sides_log_it) {
  testing::temp_dir dir;
  const std::string certs = dir / "certs", other = dir / "other";
  write_cluster_certs(certs, {"head"});
  write_cluster_certs(other, {"intruder"});
  auto c = loopback();
  c.tls = {certs + "/head.crt", certs + "/head.key", certs + "/ca.crt", ""};
  rig r(c);
  latch refused;
  r.head->on_peer_refused([&](const std::string& line) { refused.set(line); });
  worker_process intruder(r.head->port(), "intruder",
                          {"--cert", other + "/intruder.crt", "--key", other + "/intruder.key", "--ca",
                           other + "/ca.crt", "--timeout", "2"},
                          dir / "worker.err");
  EXPECT_EQ(intruder.wait(), 1) << "it cannot reach the head";
  const std::string line = refused.get(10s);
  EXPECT_NE(line.find("refused a connection from 127.0.0.1:"), std::string::npos) << line;
  EXPECT_NE(line.find("unknown ca"), std::string::npos) << line;
  std::stringstream err;
  err << std::ifstream(dir / "worker.err").rdbuf();
  // The worker's line comes from the OpenSSL wrappers of the cluster library, which
  // the troupe binary loaded on demand.
  EXPECT_NE(err.str().find("troupe cluster: TLS connection to 127.0.0.1:" + std::to_string(r.head->port()) +
                           " failed: certificate (/O=troupe cluster/CN=head) failed verification"),
            std::string::npos)
    << err.str();
  EXPECT_NE(err.str().find("cannot reach the head"), std::string::npos) << err.str();
  EXPECT_TRUE(r.head->workers().empty());
}

TEST(cluster_tls, bad_tls_files_are_input_errors_naming_the_key) {
  testing::temp_dir dir;
  write_cluster_certs(dir / "a", {"head"});
  write_cluster_certs(dir / "b", {"head"});
  auto error = [](const tls_options& t) {
    try {
      check_tls_files(t, "cluster.tls");
    } catch (const input_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string a = dir / "a", b = dir / "b";
  EXPECT_EQ(error({a + "/head.crt", a + "/head.key", a + "/ca.crt", ""}), "");
  EXPECT_NE(error({a + "/head.crt", "", a + "/ca.crt", ""}).find("cluster.tls.key: empty"), std::string::npos);
  EXPECT_NE(error({a + "/nope.crt", a + "/head.key", a + "/ca.crt", ""}).find("cluster.tls.certificate: cannot read"),
            std::string::npos);
  EXPECT_NE(error({a + "/head.crt", b + "/head.key", a + "/ca.crt", ""}).find("cluster.tls.key: '" + b +
                                                                              "/head.key' is not the key of"),
            std::string::npos);
  EXPECT_NE(error({a + "/head.crt", a + "/head.key", b + "/ca.crt", ""}).find("does not verify against cluster.tls.cafile"),
            std::string::npos);
  EXPECT_NE(error({a + "/head.key", a + "/head.key", a + "/ca.crt", ""}).find("is not a PEM certificate"),
            std::string::npos);
}

TEST(cluster_tls, cluster_certs_adds_nodes_to_an_existing_ca_and_never_overwrites) {
  testing::temp_dir dir;
  const std::string d = dir / "certs";
  auto first = write_cluster_certs(d, {"head", "w1"});
  EXPECT_EQ(first.size(), 6u);
  auto more = write_cluster_certs(d, {"w2"});
  EXPECT_EQ(more, (std::vector<std::string>{d + "/w2.crt", d + "/w2.key"}));
  check_tls_files({d + "/w2.crt", d + "/w2.key", d + "/ca.crt", ""}, "cluster.tls");  // signed by the same CA
  EXPECT_THROW(write_cluster_certs(d, {"w1"}), input_error);
  EXPECT_THROW(write_cluster_certs(d, {"bad name"}), input_error);
  EXPECT_THROW(write_cluster_certs(d, {"x", "x"}), input_error);
}

// --- the cluster: section ------------------------------------------------------------

std::string config_error(const std::string& yaml) {
  try {
    validate(read_config<experiment_config>(parse_config_text(yaml, "exp.yaml")).cluster);
  } catch (const input_error& e) {
    return e.what();
  }
  return "";
}

TEST(cluster_config, the_placement_reads_and_prints_back) {
  auto cfg = read_config<experiment_config>(parse_config_text(
    "cluster:\n  listen: 127.0.0.1:7420\n  workers:\n    - {name: gen-a, generators: 2}\n"
    "    - name: trainer-1\n      trainer_ranks: 1\n      env_hosts: 3\n",
    "exp.yaml"));
  ASSERT_EQ(cfg.cluster.workers.size(), 2u);
  EXPECT_EQ(cfg.cluster.workers[0].generators, 2);
  EXPECT_EQ(cfg.cluster.workers[1].env_hosts, 3);
  EXPECT_EQ(cfg.cluster.workers[1].trainer_ranks, 1);
  validate(cfg.cluster);
  auto back = read_config<experiment_config>(parse_config_text(write_config(cfg), "printed"));
  EXPECT_EQ(back.cluster.workers[1].name, "trainer-1");
  EXPECT_EQ(write_config(back), write_config(cfg));
}

TEST(cluster_config, bad_placements_name_the_key) {
  EXPECT_NE(config_error("cluster:\n  workers:\n    - {name: a}\n    - {name: a}\n")
              .find("cluster.workers: workers[1].name 'a' repeats workers[0].name"),
            std::string::npos);
  EXPECT_NE(config_error("cluster:\n  workers:\n    - {name: a, generators: -1}\n")
              .find("exp.yaml:3: cluster.workers[0].generators: must be >= 0, got -1"),
            std::string::npos)
    << config_error("cluster:\n  workers:\n    - {name: a, generators: -1}\n");
  EXPECT_NE(config_error("cluster:\n  workers:\n    - {generators: 1}\n").find("a worker needs a name"),
            std::string::npos);
  EXPECT_NE(config_error("cluster:\n  workers:\n    - {name: 'a b'}\n").find("cluster.workers[0].name"),
            std::string::npos);
  EXPECT_NE(config_error("cluster:\n  listen: nowhere\n").find("cluster.listen: 'nowhere' is not HOST:PORT"),
            std::string::npos);
  EXPECT_NE(config_error("cluster:\n  listen: 0.0.0.0:7420\n").find("is not a loopback address"), std::string::npos);
  // Loopback is what the host resolves to, not how its name starts.
  EXPECT_NE(config_error("cluster:\n  listen: 127.evil.invalid:7420\n").find("is not a loopback address"),
            std::string::npos);
  EXPECT_EQ(config_error("cluster:\n  listen: localhost:7420\n"), "");
  // Off loopback (with TLS), the unencrypted data plane needs the user's explicit word.
  const std::string tls = "  tls: {certificate: a.crt, key: a.key, cafile: ca.crt}\n";
  const std::string remote = "cluster:\n  listen: 10.1.2.3:7420\n" + tls;
  EXPECT_NE(config_error(remote + "  workers: [{name: g, generators: 1}]\n")
              .find("cluster.data_plane: the workers' generators and trainer ranks"),
            std::string::npos);
  EXPECT_NE(config_error(remote + "  workers: [{name: t, trainer_ranks: 1}]\n").find("cluster.data_plane"),
            std::string::npos);
  EXPECT_EQ(config_error(remote + "  workers: [{name: g, generators: 1}]\n  data_plane: insecure-private-network\n"),
            "");
  EXPECT_EQ(config_error(remote + "  workers: [{name: e, env_hosts: 2}]\n"), "") << "env hosts talk over TLS only";
  EXPECT_NE(config_error("cluster:\n  data_plane: open\n").find("cluster.data_plane"), std::string::npos);
  EXPECT_NE(config_error("cluster:\n  tls: {certificate: /nonexistent.crt}\n").find("cluster.tls.key: empty"),
            std::string::npos);
  // The files are read when the head starts.
  node h;
  auto c = loopback();
  c.tls = {"/nonexistent.crt", "/nonexistent.key", "/nonexistent-ca.crt", ""};
  try {
    cluster_head head(*h.sys, c);
    ADD_FAILURE() << "a head with missing TLS files";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("cluster.tls.certificate: cannot read '/nonexistent.crt'"), std::string::npos)
      << e.what();
  }
  EXPECT_EQ(config_error("cluster:\n  listen: \"[::1]:0\"\n"), "");
}

}  // namespace
}  // namespace troupe
