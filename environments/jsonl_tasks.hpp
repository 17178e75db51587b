// Tasks from a JSONL file: one JSON object per line, blank lines ignored.
//
//   {"id": "q1", "prompt": "What is 2+3?", "metadata": {"answer": "5"}, "split": "eval"}
//
//   id        string or integer, unique in the file; optional (default "<file stem>/<line>")
//   prompt    string, required: the first observation
//   metadata  object of string values, optional: what the environment needs to judge
//             (e.g. "answer" for arithmetic, "numbers" and "target" for countdown)
//   split     "train" or "eval" ("validation" is accepted for eval), optional
//
// Any other key is an error (a misspelt "promt" would otherwise drop a field silently).
// Every error names file:line and what is wrong, e.g.
//   tasks.jsonl:7: metadata.answer: expected a string, got number 5
#pragma once

#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "environments/task_source.hpp"

namespace troupe {

struct file_task {
  task t;
  std::optional<split> s;  // the line's "split", if it has one
  int line = 0;            // 1-based
};

// Reads and validates the whole file. Throws input_error (file:line) on the first bad
// line, a duplicate id (naming both lines), an unreadable file, or a file with no tasks.
std::vector<file_task> load_jsonl_tasks(const std::string& path);
// The same from a stream; `name` stands for the file in errors and default ids.
std::vector<file_task> read_jsonl_tasks(std::istream& in, const std::string& name);

enum class split_mode {
  automatic,  // "auto": a line's "split" when present, else the seeded holdout of its id
  holdout,    // "holdout": every line by the seeded holdout; "split" fields are ignored
};

// A file-backed task_source over the loaded tasks. The train split goes round in epochs,
// each a seeded shuffle of the train tasks; the eval split is in file order.
class file_task_source : public task_source {
 public:
  // Throws input_error when no task lands in train.
  file_task_source(std::string path, std::vector<file_task> tasks, split_mode mode, double eval_fraction,
                   std::uint64_t seed);
  task at(split s, std::int64_t index) const override;
  std::optional<std::int64_t> size(split s) const override;
  std::string describe() const override;

 private:
  std::string path_;
  std::uint64_t seed_;
  std::vector<task> train_, eval_;
  // The current epoch's train order (a cache; at() recomputes it for another epoch).
  mutable std::mutex order_mu_;
  mutable std::uint64_t order_epoch_ = ~0ULL;
  mutable std::vector<std::uint64_t> order_;
};

}  // namespace troupe
