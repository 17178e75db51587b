#include <gtest/gtest.h>

#include "core/config_binding.hpp"
#include "core/config_tree.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

struct optim_section {
  double lr = 1e-5;
  int warmup = 0;
  std::string schedule = "constant";
  template <class V>
  void describe(V& v) {
    v.field("lr", lr, "learning rate", greater_than(0.0));
    v.field("warmup", warmup, "warmup steps", at_least(0));
    v.field("schedule", schedule, "lr schedule", one_of{"constant", "linear", "cosine"});
  }
};

struct test_config {
  std::string name = "default";
  std::map<std::string, std::string> options;
  bool verbose = false;
  std::int64_t seed = 7;
  std::vector<int> sizes = {1, 2};
  optim_section optim;
  template <class V>
  void describe(V& v) {
    v.field("name", name, "a name");
    v.field("verbose", verbose, "talk more");
    v.field("seed", seed, "seed", at_least<std::int64_t>(0));
    v.field("sizes", sizes, "sizes");
    v.field("optim", optim, "optimizer");
    v.field("options", options, "free-form options");
  }
};

// Loads `text` as a file in `dir` and binds it; returns the input_error text or "".
std::string error_of(const testing::temp_dir& dir, const std::string& text,
                     const std::vector<std::string>& overrides = {}) {
  auto path = dir.write("cfg.yaml", text);
  try {
    auto tree = load_config_tree(path);
    for (const auto& o : overrides) apply_override(tree, o);
    read_config<test_config>(tree);
  } catch (const input_error& e) {
    return e.what();
  }
  return "";
}

TEST(config, keeps_defaults_for_keys_the_file_does_not_set) {
  testing::temp_dir dir;
  auto cfg = read_config<test_config>(load_config_tree(dir.write("a.yaml", "name: x\n")));
  EXPECT_EQ(cfg.name, "x");
  EXPECT_EQ(cfg.seed, 7);
  EXPECT_DOUBLE_EQ(cfg.optim.lr, 1e-5);
  EXPECT_EQ(cfg.sizes, (std::vector<int>{1, 2}));
}

TEST(config, composes_defaults_files_in_order_then_the_file_itself) {
  testing::temp_dir dir;
  dir.write("base.yaml", "name: base\nseed: 1\noptim:\n  lr: 0.5\n  warmup: 3\n");
  dir.write("more.yaml", "seed: 2\noptim:\n  warmup: 4\n");
  auto path = dir.write("top.yaml", "defaults: [base.yaml, more.yaml]\noptim:\n  lr: 0.25\n");
  auto cfg = read_config<test_config>(load_config_tree(path));
  EXPECT_EQ(cfg.name, "base");
  EXPECT_EQ(cfg.seed, 2);
  EXPECT_DOUBLE_EQ(cfg.optim.lr, 0.25);
  EXPECT_EQ(cfg.optim.warmup, 4);
}

TEST(config, dotted_overrides_win_over_files_and_parse_as_yaml) {
  testing::temp_dir dir;
  auto tree = load_config_tree(dir.write("a.yaml", "optim:\n  lr: 0.5\n"));
  apply_override(tree, "optim.lr=1e-3");
  apply_override(tree, "sizes=[4, 5, 6]");
  apply_override(tree, "optim.schedule=cosine");
  apply_override(tree, "verbose=true");
  auto cfg = read_config<test_config>(tree);
  EXPECT_DOUBLE_EQ(cfg.optim.lr, 1e-3);
  EXPECT_EQ(cfg.sizes, (std::vector<int>{4, 5, 6}));
  EXPECT_EQ(cfg.optim.schedule, "cosine");
  EXPECT_TRUE(cfg.verbose);
}

TEST(config, unknown_key_names_file_line_path_and_closest_key) {
  testing::temp_dir dir;
  auto err = error_of(dir, "name: x\noptim:\n  lrr: 0.1\n");
  EXPECT_NE(err.find("cfg.yaml:3: optim.lrr: unknown key (did you mean 'lr'?)"), std::string::npos) << err;
}

TEST(config, unknown_key_far_from_any_lists_the_valid_keys) {
  testing::temp_dir dir;
  auto err = error_of(dir, "completely_unrelated: 1\n");
  EXPECT_NE(err.find("cfg.yaml:1: completely_unrelated: unknown key (valid keys: name, verbose, seed, sizes, optim, options)"),
            std::string::npos)
    << err;
}

TEST(config, wrong_type_names_file_line_and_key_path) {
  testing::temp_dir dir;
  auto err = error_of(dir, "name: x\noptim:\n  warmup: lots\n");
  EXPECT_NE(err.find("cfg.yaml:3: optim.warmup: expected an integer, got 'lots'"), std::string::npos) << err;
  err = error_of(dir, "optim: 3\n");
  EXPECT_NE(err.find("cfg.yaml:1: optim: expected a mapping of keys, got '3'"), std::string::npos) << err;
  err = error_of(dir, "sizes: [1, x]\n");
  EXPECT_NE(err.find("cfg.yaml:1: sizes[1]: expected an integer, got 'x'"), std::string::npos) << err;
  err = error_of(dir, "verbose: maybe\n");
  EXPECT_NE(err.find("verbose: expected true or false, got 'maybe'"), std::string::npos) << err;
  err = error_of(dir, "name:\n");
  EXPECT_NE(err.find("cfg.yaml:1: name: expected a string, got nothing (null)"), std::string::npos) << err;
}

TEST(config, out_of_range_values_are_rejected_with_the_bound) {
  testing::temp_dir dir;
  auto err = error_of(dir, "optim:\n  lr: 0\n");
  EXPECT_NE(err.find("cfg.yaml:2: optim.lr: must be > 0.0, got 0.0"), std::string::npos) << err;
  err = error_of(dir, "seed: -1\n");
  EXPECT_NE(err.find("seed: must be >= 0, got -1"), std::string::npos) << err;
  err = error_of(dir, "optim:\n  schedule: cosin\n");
  EXPECT_NE(err.find("optim.schedule: must be one of constant, linear, cosine, got 'cosin' (did you mean 'cosine'?)"),
            std::string::npos)
    << err;
  err = error_of(dir, "seed: 99999999999999999999999\n");
  EXPECT_NE(err.find("seed: integer '99999999999999999999999' is out of range"), std::string::npos) << err;
}

TEST(config, override_errors_name_the_command_line_argument) {
  testing::temp_dir dir;
  auto err = error_of(dir, "name: x\n", {"optim.lrr=3"});
  EXPECT_NE(err.find("command line (optim.lrr=3): optim.lrr: unknown key (did you mean 'lr'?)"), std::string::npos)
    << err;
  err = error_of(dir, "name: x\n", {"seed=abc"});
  EXPECT_NE(err.find("command line (seed=abc): seed: expected an integer"), std::string::npos) << err;
  err = error_of(dir, "name: x\n", {"novalue"});
  EXPECT_NE(err.find("'novalue': expected key=value"), std::string::npos) << err;
  err = error_of(dir, "name: x\n", {"optim..lr=1"});
  EXPECT_NE(err.find("empty key segment"), std::string::npos) << err;
}

TEST(config, yaml_syntax_error_names_file_line_and_column) {
  testing::temp_dir dir;
  auto err = error_of(dir, "name: x\noptim: [1, 2\nseed: 3\n");
  EXPECT_NE(err.find("cfg.yaml:"), std::string::npos) << err;
  EXPECT_NE(err.find("YAML syntax error"), std::string::npos) << err;
}

TEST(config, duplicate_keys_are_an_error) {
  testing::temp_dir dir;
  auto err = error_of(dir, "seed: 1\nseed: 2\n");
  EXPECT_NE(err.find("cfg.yaml:2: duplicate key 'seed'"), std::string::npos) << err;
}

TEST(config, missing_file_and_directory_are_clear_errors) {
  testing::temp_dir dir;
  try {
    load_config_tree(dir / "nope.yaml");
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("nope.yaml': cannot read (No such file or directory)"), std::string::npos)
      << e.what();
  }
  EXPECT_THROW(load_config_tree(dir.path().string()), input_error);
}

TEST(config, defaults_cycles_and_missing_defaults_are_errors) {
  testing::temp_dir dir;
  dir.write("a.yaml", "defaults: [b.yaml]\n");
  dir.write("b.yaml", "defaults: [a.yaml]\n");
  try {
    load_config_tree(dir / "a.yaml");
    FAIL() << "no error";
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("defaults form a cycle"), std::string::npos) << e.what();
  }
  auto err = error_of(dir, "defaults: [missing.yaml]\n");
  EXPECT_NE(err.find("cfg.yaml:1: defaults: file"), std::string::npos) << err;
  EXPECT_NE(err.find("missing.yaml' does not exist"), std::string::npos) << err;
}

TEST(config, top_level_must_be_a_mapping) {
  testing::temp_dir dir;
  auto err = error_of(dir, "- 1\n- 2\n");
  EXPECT_NE(err.find("the top level must be a mapping"), std::string::npos) << err;
}

TEST(config, printed_config_reads_back_to_the_same_values) {
  test_config cfg;
  cfg.name = "yes";  // would read back as a bool if printed unquoted
  cfg.optim.lr = 3e-7;
  cfg.sizes = {9};
  cfg.seed = 42;
  const auto text = write_config(cfg);
  EXPECT_NE(text.find("  lr: 3e-07  # learning rate"), std::string::npos) << text;
  auto back = read_config<test_config>(parse_config_text(text, "printed"));
  EXPECT_EQ(back.name, "yes");
  EXPECT_DOUBLE_EQ(back.optim.lr, 3e-7);
  EXPECT_EQ(back.sizes, (std::vector<int>{9}));
  EXPECT_EQ(back.seed, 42);
  EXPECT_EQ(write_config(back), text);
}

TEST(config, option_maps_take_any_keys_with_scalar_values_and_read_back) {
  testing::temp_dir dir;
  auto tree = load_config_tree(dir.write("a.yaml", "options:\n  max_digits: 2\n  ops: \"+-\"\n"));
  apply_override(tree, "options.eval_fraction=0.2");
  auto cfg = read_config<test_config>(tree);
  EXPECT_EQ(cfg.options, (std::map<std::string, std::string>{{"max_digits", "2"}, {"ops", "+-"}, {"eval_fraction", "0.2"}}));
  auto back = read_config<test_config>(parse_config_text(write_config(cfg), "printed"));
  EXPECT_EQ(back.options, cfg.options);
  EXPECT_NE(error_of(dir, "options: [1]\n").find("options: expected a mapping of options"), std::string::npos);
  EXPECT_NE(error_of(dir, "options:\n  a: [1]\n").find("options.a: expected a string, got a list"), std::string::npos);
}

// A list of sections (like cluster.workers): each item is read as a section, with
// errors naming its index, and printed in block style that reads back.
struct member_section {
  std::string name;
  int count = 0;
  optim_section optim;
  template <class V>
  void describe(V& v) {
    v.field("name", name, "who");
    v.field("count", count, "how many", at_least(0));
    v.field("optim", optim, "nested");
  }
};

struct team_config {
  std::vector<member_section> members;
  int size = 1;
  template <class V>
  void describe(V& v) {
    v.field("members", members, "the members");
    v.field("size", size, "after the list");
  }
};

TEST(config, lists_of_sections_read_each_item_and_name_its_index_in_errors) {
  auto cfg = read_config<team_config>(parse_config_text(
      "members:\n  - name: a\n    count: 2\n  - {name: b, optim: {lr: 0.5}}\nsize: 3\n", "team.yaml"));
  ASSERT_EQ(cfg.members.size(), 2u);
  EXPECT_EQ(cfg.members[0].name, "a");
  EXPECT_EQ(cfg.members[0].count, 2);
  EXPECT_EQ(cfg.members[1].name, "b");
  EXPECT_DOUBLE_EQ(cfg.members[1].optim.lr, 0.5);
  EXPECT_DOUBLE_EQ(cfg.members[0].optim.lr, 1e-5);  // defaults fill each item
  EXPECT_EQ(cfg.size, 3);

  auto error = [](const std::string& text) {
    try {
      read_config<team_config>(parse_config_text(text, "team.yaml"));
    } catch (const input_error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error("members:\n  - name: a\n  - name: b\n    count: -1\n").find("team.yaml:4: members[1].count: must be >= 0"),
            std::string::npos)
      << error("members:\n  - name: a\n  - name: b\n    count: -1\n");
  EXPECT_NE(error("members:\n  - name: a\n    cuont: 1\n").find("members[0].cuont: unknown key (did you mean 'count'?)"),
            std::string::npos);
  EXPECT_NE(error("members:\n  - a\n").find("members[0]: expected a mapping of keys"), std::string::npos);
  EXPECT_NE(error("members: {name: a}\n").find("members: expected a list"), std::string::npos);
}

TEST(config, lists_of_sections_print_in_block_style_and_read_back) {
  team_config cfg;
  EXPECT_NE(write_config(cfg).find("members: []  # the members"), std::string::npos) << write_config(cfg);
  cfg.members.resize(2);
  cfg.members[0].name = "a";
  cfg.members[0].count = 4;
  cfg.members[1].name = "no";  // would read back as a bool if unquoted
  cfg.members[1].optim.lr = 0.25;
  const auto text = write_config(cfg);
  EXPECT_NE(text.find("members:  # the members\n  - name: \"a\"  # who\n    count: 4  # how many\n    optim:  # nested\n"
                      "      lr: "),
            std::string::npos)
      << text;
  auto back = read_config<team_config>(parse_config_text(text, "printed"));
  ASSERT_EQ(back.members.size(), 2u);
  EXPECT_EQ(back.members[1].name, "no");
  EXPECT_DOUBLE_EQ(back.members[1].optim.lr, 0.25);
  EXPECT_EQ(back.members[0].count, 4);
  EXPECT_EQ(write_config(back), text);
}

TEST(config, suggestion_picks_the_closest_key) {
  EXPECT_EQ(suggest("group_sise", {"group_size", "grad_norm", "lr"}), " (did you mean 'group_size'?)");
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

}  // namespace
}  // namespace troupe
