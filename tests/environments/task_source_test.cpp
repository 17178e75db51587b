#include <gtest/gtest.h>

#include <set>

#include "core/error.hpp"
#include "environments/arithmetic.hpp"
#include "environments/jsonl_tasks.hpp"
#include "environments/task_source.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

// The message of the input_error that loading `content` as a tasks file throws.
std::string load_error(const std::string& content) {
  testing::temp_dir dir;
  const std::string path = dir.write("tasks.jsonl", content);
  try {
    load_jsonl_tasks(path);
  } catch (const input_error& e) {
    const std::string what = e.what();
    const auto at = what.find(path);
    EXPECT_NE(at, std::string::npos) << "the error names the file: " << what;
    return at == std::string::npos ? what : what.substr(at + path.size());
  }
  ADD_FAILURE() << "no error for: " << content;
  return "";
}

TEST(jsonl_tasks, loads_ids_prompts_metadata_and_splits) {
  testing::temp_dir dir;
  const std::string path = dir.write("tasks.jsonl",
                                     "{\"id\": \"a\", \"prompt\": \"1+1=\", \"metadata\": {\"answer\": \"2\"}}\n"
                                     "\n"
                                     "{\"id\": 7, \"prompt\": \"2+2=\", \"split\": \"eval\"}\r\n"
                                     "{\"prompt\": \"3+3=\", \"split\": \"validation\", \"metadata\": {}}\n");
  auto tasks = load_jsonl_tasks(path);
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0].t.id, "a");
  EXPECT_EQ(tasks[0].t.metadata.at("answer"), "2");
  EXPECT_FALSE(tasks[0].s.has_value());
  EXPECT_EQ(tasks[0].line, 1);
  EXPECT_EQ(tasks[1].t.id, "7");
  EXPECT_EQ(tasks[1].s, split::eval);
  EXPECT_EQ(tasks[1].line, 3);
  EXPECT_EQ(tasks[2].t.id, "tasks/4") << "a missing id defaults to <stem>/<line>";
  EXPECT_EQ(tasks[2].s, split::eval);
}

TEST(jsonl_tasks, errors_name_file_line_and_what_is_wrong) {
  const std::string ok = "{\"id\": \"a\", \"prompt\": \"p\"}\n";
  EXPECT_EQ(load_error(ok + "{\"id\": \"b\", \"prompt\": \"p\"\n"), ":2: bad JSON: column 26: syntax error while parsing object - unexpected end of input; expected '}'");
  EXPECT_EQ(load_error(ok + "{\"id\": \"b\"}\n"), ":2: missing \"prompt\"");
  EXPECT_EQ(load_error(ok + ok), ":2: duplicate id 'a' (first at line 1)");
  EXPECT_EQ(load_error(ok + "\n{\"id\": \"b\", \"prompt\": \"p\", \"metadata\": {\"answer\": 5}}\n"),
            ":3: metadata.answer: expected a string, got number 5 (write numbers as strings, e.g. \"5\")");
  EXPECT_EQ(load_error("{\"prompt\": 3}"), ":1: prompt: expected a string, got number 3");
  EXPECT_EQ(load_error("{\"prompt\": \"\"}"), ":1: prompt: is empty");
  EXPECT_EQ(load_error("[1, 2]"), ":1: expected a JSON object, got an array");
  EXPECT_EQ(load_error("{\"promt\": \"p\"}"), ":1: unknown key 'promt' (did you mean 'prompt'?)");
  EXPECT_EQ(load_error("{\"prompt\": \"p\", \"split\": \"test\"}"), ":1: split: expected \"train\" or \"eval\", got string \"test\"");
  EXPECT_EQ(load_error("{\"prompt\": \"p\", \"id\": 1.5}"), ":1: id: expected a string or an integer, got number 1.5");
  EXPECT_EQ(load_error("{\"prompt\": \"p\", \"metadata\": [\"a\"]}"), ":1: metadata: expected an object of strings, got an array");
  EXPECT_EQ(load_error("{\"prompt\": \"\xff\"}").substr(0, 13), ":1: bad JSON:");
  EXPECT_EQ(load_error("\n\n"), ": has no tasks");
  EXPECT_EQ(load_error("{\"prompt\": \"p\", \"id\": 1e999}"), ":1: bad JSON: number overflow parsing '1e999'")
      << "found by the fuzzer";
}

TEST(jsonl_tasks, a_missing_file_is_an_input_error_naming_it) {
  try {
    load_jsonl_tasks("/nonexistent/tasks.jsonl");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_EQ(std::string(e.what()), "tasks file /nonexistent/tasks.jsonl: cannot open: No such file or directory");
  }
}

std::string numbered_tasks(int n, const char* split_field = nullptr) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += "{\"id\": \"t" + std::to_string(i) + "\", \"prompt\": \"p" + std::to_string(i) + "\", \"metadata\": {\"answer\": \"" +
         std::to_string(i) + "\"}";
    if (split_field) s += std::string(", \"split\": \"") + (i % 4 == 0 ? "eval" : split_field) + "\"";
    s += "}\n";
  }
  return s;
}

TEST(file_task_source, uses_split_fields_and_holds_out_untagged_lines_by_id) {
  testing::temp_dir dir;
  auto tagged = make_task_source("arithmetic", {{"tasks_file", dir.write("a.jsonl", numbered_tasks(20, "train"))}}, 1);
  EXPECT_EQ(tagged->size(split::train), 15);
  EXPECT_EQ(tagged->size(split::eval), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(tagged->at(split::eval, i).id, "t" + std::to_string(4 * i)) << "file order";
  EXPECT_EQ(tagged->describe(), "file " + (dir / "a.jsonl") + " (15 train, 5 eval)");

  const std::string untagged = dir.write("b.jsonl", numbered_tasks(400));
  auto held = make_task_source("arithmetic", {{"tasks_file", untagged}, {"eval_fraction", "0.25"}}, 1);
  const auto n_eval = *held->size(split::eval);
  EXPECT_GT(n_eval, 70);
  EXPECT_LT(n_eval, 130);
  EXPECT_EQ(*held->size(split::train) + n_eval, 400);
  std::set<std::string> eval;
  for (int i = 0; i < n_eval; ++i) eval.insert(held->at(split::eval, i).id);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(eval.count(held->at(split::train, i).id), 0u);
  // "holdout" ignores split fields.
  auto ignore = make_task_source("arithmetic", {{"tasks_file", dir / "a.jsonl"}, {"split", "holdout"}, {"eval_fraction", "0.5"}}, 3);
  std::set<std::string> held_out;
  for (int i = 0; i < *ignore->size(split::eval); ++i) held_out.insert(ignore->at(split::eval, i).id);
  EXPECT_NE(held_out, (std::set<std::string>{"t0", "t4", "t8", "t12", "t16"}));
}

TEST(file_task_source, train_goes_round_in_seeded_shuffled_epochs) {
  testing::temp_dir dir;
  const std::string path = dir.write("a.jsonl", numbered_tasks(10, "train"));  // t0, t4, t8 are eval
  auto a = make_task_source("arithmetic", {{"tasks_file", path}}, 5);
  auto b = make_task_source("arithmetic", {{"tasks_file", path}}, 5);
  std::vector<std::string> epoch0, epoch1;
  for (int i = 0; i < 7; ++i) epoch0.push_back(a->at(split::train, i).id);
  for (int i = 7; i < 14; ++i) epoch1.push_back(a->at(split::train, i).id);
  auto sorted0 = epoch0, sorted1 = epoch1;
  std::sort(sorted0.begin(), sorted0.end());
  std::sort(sorted1.begin(), sorted1.end());
  EXPECT_EQ(sorted0, (std::vector<std::string>{"t1", "t2", "t3", "t5", "t6", "t7", "t9"})) << "each epoch is a permutation";
  EXPECT_EQ(sorted0, sorted1);
  EXPECT_NE(epoch0, epoch1) << "reshuffled per epoch";
  for (int i = 13; i >= 0; --i) EXPECT_EQ(b->at(split::train, i).id, (i < 7 ? epoch0[i] : epoch1[i - 7])) << "any order of calls";
  EXPECT_EQ(a->at(split::eval, 3).id, "t0") << "eval wraps around";
}

TEST(file_task_source, refuses_a_file_without_train_tasks_and_an_empty_eval_split) {
  testing::temp_dir dir;
  const std::string all_eval = dir.write("e.jsonl", "{\"prompt\": \"p\", \"split\": \"eval\"}\n");
  EXPECT_THROW(make_task_source("arithmetic", {{"tasks_file", all_eval}}, 1), input_error);
  const std::string all_train = dir.write("t.jsonl", "{\"prompt\": \"p\", \"split\": \"train\"}\n");
  auto src = make_task_source("arithmetic", {{"tasks_file", all_train}}, 1);
  EXPECT_EQ(src->size(split::eval), 0);
  EXPECT_THROW(src->at(split::eval, 0), input_error);
}

TEST(make_task_source, falls_back_to_the_environments_generator) {
  auto src = make_task_source("arithmetic", {{"max_digits", "1"}}, 7);
  EXPECT_EQ(src->size(split::train), std::nullopt);
  EXPECT_EQ(src->describe(), "generated by arithmetic");
  arithmetic_options o;
  o.max_digits = 1;
  arithmetic_tasks direct(o, 7);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(src->at(split::train, i).prompt, direct.at(split::train, i).prompt);
  for (const char* name : {"arithmetic", "countdown", "guess_number", "calculator"}) {
    EXPECT_TRUE(has_task_generator(name)) << name;
    auto s = make_task_source(name, {}, 1);
    task t = s->at(split::eval, 0);
    EXPECT_FALSE(t.prompt.empty()) << name;
    EXPECT_NO_THROW(make_environment(name)->reset(t)) << "the generator's tasks suit its environment: " << name;
  }
}

TEST(make_task_source, keeps_the_arithmetic_tasks_of_existing_seeds) {
  // Recorded before the generator moved behind task_source: runs and resumes of
  // earlier versions see the same problems.
  arithmetic_options o;
  o.ops = "+-*";
  arithmetic_tasks t(o, 7);
  const std::vector<std::string> train = {"69+8=", "47+3=", "25+8=", "20+23="}, eval = {"46*2=", "15+33=", "13-60=", "0-82="};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(t.at(split::train, i).prompt, train[i]);
    EXPECT_EQ(t.at(split::eval, i).prompt, eval[i]);
  }
}

TEST(make_task_source, bad_options_are_input_errors) {
  EXPECT_THROW(make_task_source("arithmetic", {{"split", "holdout"}}, 1), input_error) << "split needs a tasks_file";
  EXPECT_THROW(make_task_source("arithmetic", {{"tasks_file", "x.jsonl"}, {"split", "random"}}, 1), input_error);
  EXPECT_THROW(make_task_source("arithmetic", {{"eval_fraction", "1.5"}}, 1), input_error);
  EXPECT_THROW(make_task_source("arithmetic", {{"max_digits", "x"}}, 1), input_error);
  try {
    make_task_source("no_such_env", {}, 1);
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(std::string(e.what()).find("set env.options.tasks_file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace troupe
