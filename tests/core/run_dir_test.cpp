#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "core/run_dir.hpp"
#include "tests/support/private_mount.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST(run_dir, holds_the_store_and_config_and_leaves_no_temporary) {
  testing::temp_dir dir;
  run_section run;
  run.dir = dir / "runs";
  run.name = "first";
  auto r = create_run_dir(run, "smoke", "experiment: smoke\n");
  EXPECT_EQ(r.path, dir / "runs/first");
  // (SQLite's -wal and -shm files exist while the store is open.)
  auto files = entries(r.path);
  files.erase(std::remove_if(files.begin(), files.end(),
                             [](const std::string& f) { return f.find("-wal") != f.npos || f.find("-shm") != f.npos; }),
              files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.yaml", "run.lock", "store.sqlite"}));
  EXPECT_EQ(entries(run.dir), (std::vector<std::string>{"first"}));
  EXPECT_EQ(r.store.info().name, "first");
  EXPECT_EQ(r.store.config_yaml(), "experiment: smoke\n");
  std::ifstream cfg(r.path + "/config.yaml");
  std::string line;
  std::getline(cfg, line);
  EXPECT_EQ(line, "experiment: smoke");
}

TEST(run_dir, a_run_being_written_cannot_be_reopened_until_its_writer_is_gone) {
  testing::temp_dir dir;
  run_section run;
  run.dir = dir / "runs";
  run.name = "busy";
  std::string path;
  {
    auto r = create_run_dir(run, "smoke", "experiment: smoke\n");
    path = r.path;
    try {
      reopen_run_dir(path);
      ADD_FAILURE() << "a locked run was reopened";
    } catch (const input_error& e) {
      EXPECT_NE(std::string(e.what()).find("another troupe process is running it"), std::string::npos) << e.what();
    }
  }
  auto again = reopen_run_dir(path);  // the first writer released it
  EXPECT_EQ(again.store.info().name, "busy");
  EXPECT_THROW(reopen_run_dir(dir / "runs/nothing"), input_error);
}

TEST(run_dir, generated_names_never_collide_but_explicit_names_are_never_altered) {
  testing::temp_dir dir;
  run_section run;
  run.dir = dir / "runs";
  auto a = create_run_dir(run, "smoke", "");
  auto b = create_run_dir(run, "smoke", "");
  EXPECT_NE(a.path, b.path);
  EXPECT_EQ(b.store.info().name, fs::path(b.path).filename().string());
  EXPECT_EQ(list_run_dirs(run.dir).size(), 2u);

  run.name = "fixed";
  create_run_dir(run, "smoke", "");
  EXPECT_THROW(create_run_dir(run, "smoke", ""), system_error);
  EXPECT_EQ(list_run_dirs(run.dir).size(), 3u);
  for (const auto& e : entries(run.dir)) EXPECT_NE(e.rfind(".tmp-", 0), 0u) << e;
}

TEST(run_dir, bad_names_are_input_errors) {
  testing::temp_dir dir;
  run_section run;
  run.dir = dir / "runs";
  run.name = "../escape";
  EXPECT_THROW(create_run_dir(run, "smoke", ""), input_error);
}

TEST(run_dir, resolves_runs_by_path_or_by_name) {
  testing::temp_dir dir;
  run_section run;
  run.dir = dir / "runs";
  run.name = "mine";
  auto r = create_run_dir(run, "smoke", "");
  EXPECT_EQ(resolve_run_dir("mine", run.dir), r.path);
  EXPECT_EQ(resolve_run_dir(r.path, "elsewhere"), r.path);
  EXPECT_THROW(resolve_run_dir("other", run.dir), input_error);
}

TEST(run_dir, read_only_parent_gives_a_clear_error_naming_the_path) {
  testing::temp_dir dir;
  const std::string mnt = dir / "ro";
  fs::create_directories(mnt);
  const std::string report = dir / "report.txt";
  int rc = testing::run_with_private_tmpfs(mnt, /*read_only=*/true, 1 << 20, [&] {
    run_section run;
    run.dir = mnt + "/runs";
    try {
      create_run_dir(run, "smoke", "");
    } catch (const system_error& e) {
      std::ofstream(report) << e.what();
      return fs::exists(run.dir) ? 2 : 0;
    }
    return 1;
  });
  if (rc == 77) GTEST_SKIP() << "no mount namespaces here";
  ASSERT_EQ(rc, 0);
  std::ifstream in(report);
  std::string msg((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(msg.find("run.dir '" + mnt + "/runs': cannot create: Read-only file system"), std::string::npos) << msg;
}

TEST(run_dir, full_disk_midway_leaves_no_partial_run_behind) {
  testing::temp_dir dir;
  const std::string mnt = dir / "small";
  fs::create_directories(mnt);
  const std::string report = dir / "report.txt";
  // 8 KiB: room for the directory and config.yaml, not for the SQLite store.
  int rc = testing::run_with_private_tmpfs(mnt, /*read_only=*/false, 8192, [&] {
    run_section run;
    run.dir = mnt + "/runs";
    try {
      create_run_dir(run, "smoke", std::string(3000, '#') + "\n");
    } catch (const system_error& e) {
      std::ofstream(report) << e.what();
      return entries(run.dir).empty() ? 0 : 2;
    }
    return 1;
  });
  if (rc == 77) GTEST_SKIP() << "no mount namespaces here";
  EXPECT_EQ(rc, 0) << "1: no error raised, 2: something was left in runs/";
  std::ifstream in(report);
  std::string msg((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(msg.find("full"), std::string::npos) << msg;
}

}  // namespace
}  // namespace troupe
