#include "environments/jsonl_tasks.hpp"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/config_binding.hpp"
#include "core/error.hpp"
#include "core/hash.hpp"

namespace troupe {

namespace {

using json = nlohmann::json;

// "number 5", "array", "null": how a wrong value is shown in an error.
std::string kind_of(const json& v) {
  if (v.is_number()) return "number " + v.dump();
  if (v.is_boolean()) return "boolean " + v.dump();
  if (v.is_null()) return "null";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "string " + v.dump();
}

class line_reader {
 public:
  line_reader(std::string path, int line) : where_(std::move(path) + ":" + std::to_string(line) + ": ") {}
  [[noreturn]] void fail(const std::string& what) const { throw input_error(where_ + what); }

 private:
  std::string where_;
};

file_task parse_line(const std::string& path, const std::string& stem, int line_no, const std::string& text) {
  line_reader at(path, line_no);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    // nlohmann's text starts "[json.exception.parse_error.101] parse error at line 1,
    // column 5: ..."; the column and the reason are what the user needs. A number out
    // of double's range (1e999) is an out_of_range exception, not a parse_error; the
    // fuzzer found it.
    std::string what = e.what();
    auto p = what.find("column");
    if (p == std::string::npos && what.rfind("[json.exception.", 0) == 0) p = what.find("] ") + 2;
    at.fail("bad JSON: " + (p == std::string::npos ? what : what.substr(p)));
  }
  if (!j.is_object()) at.fail("expected a JSON object, got " + kind_of(j));
  static const std::vector<std::string> keys = {"id", "prompt", "metadata", "split"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end())
      at.fail("unknown key '" + it.key() + "'" + suggest(it.key(), keys));

  file_task ft;
  ft.line = line_no;
  if (!j.contains("prompt")) at.fail("missing \"prompt\"");
  if (!j["prompt"].is_string()) at.fail("prompt: expected a string, got " + kind_of(j["prompt"]));
  ft.t.prompt = j["prompt"].get<std::string>();
  if (ft.t.prompt.empty()) at.fail("prompt: is empty");

  if (!j.contains("id")) {
    ft.t.id = stem + "/" + std::to_string(line_no);
  } else if (j["id"].is_string()) {
    ft.t.id = j["id"].get<std::string>();
    if (ft.t.id.empty()) at.fail("id: is empty");
  } else if (j["id"].is_number_integer()) {
    ft.t.id = j["id"].dump();
  } else {
    at.fail("id: expected a string or an integer, got " + kind_of(j["id"]));
  }

  if (j.contains("metadata")) {
    const json& m = j["metadata"];
    if (!m.is_object()) at.fail("metadata: expected an object of strings, got " + kind_of(m));
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it.value().is_string())
        at.fail("metadata." + it.key() + ": expected a string, got " + kind_of(it.value()) +
                " (write numbers as strings, e.g. \"5\")");
      ft.t.metadata[it.key()] = it.value().get<std::string>();
    }
  }

  if (j.contains("split")) {
    const json& s = j["split"];
    const std::string v = s.is_string() ? s.get<std::string>() : "";
    if (v == "train") ft.s = split::train;
    else if (v == "eval" || v == "validation") ft.s = split::eval;
    else at.fail("split: expected \"train\" or \"eval\", got " + kind_of(s));
  }
  return ft;
}

}  // namespace

std::vector<file_task> load_jsonl_tasks(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error("tasks file " + path + ": cannot open: " + errno_text(errno));
  return read_jsonl_tasks(in, path);
}

std::vector<file_task> read_jsonl_tasks(std::istream& in, const std::string& path) {
  const std::string stem = std::filesystem::path(path).stem().string();
  std::vector<file_task> out;
  std::map<std::string, int> first_line_of_id;
  std::string text;
  int line_no = 0;
  while (std::getline(in, text)) {
    ++line_no;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    file_task ft = parse_line(path, stem, line_no, text);
    auto [it, fresh] = first_line_of_id.emplace(ft.t.id, line_no);
    if (!fresh)
      throw input_error(path + ":" + std::to_string(line_no) + ": duplicate id '" + ft.t.id + "' (first at line " +
                        std::to_string(it->second) + ")");
    out.push_back(std::move(ft));
  }
  if (in.bad()) throw input_error("tasks file " + path + ": read failed");
  if (out.empty()) throw input_error("tasks file " + path + ": has no tasks");
  return out;
}

file_task_source::file_task_source(std::string path, std::vector<file_task> tasks, split_mode mode, double eval_fraction,
                                   std::uint64_t seed)
    : path_(std::move(path)), seed_(seed) {
  for (auto& ft : tasks) {
    const bool eval = mode == split_mode::automatic && ft.s ? *ft.s == split::eval
                                                            : in_eval_split(seed, ft.t.id, eval_fraction);
    (eval ? eval_ : train_).push_back(std::move(ft.t));
  }
  if (train_.empty())
    throw input_error("tasks file " + path_ + ": no task is in the train split (every line is \"split\": \"eval\", "
                      "or the holdout took them all)");
}

task file_task_source::at(split s, std::int64_t index) const {
  const auto& v = s == split::train ? train_ : eval_;
  if (v.empty()) throw input_error("tasks file " + path_ + ": has no " + split_name(s) + " tasks");
  const auto n = static_cast<std::uint64_t>(v.size()), i = static_cast<std::uint64_t>(index);
  if (s == split::eval) return v[i % n];
  // Train: epoch e is a Fisher-Yates shuffle seeded by (seed, e). Computing it costs
  // O(n), so the current epoch's order is kept.
  const std::uint64_t epoch = i / n;
  std::lock_guard<std::mutex> lock(order_mu_);
  if (order_epoch_ != epoch || order_.size() != n) {
    order_.resize(n);
    for (std::uint64_t k = 0; k < n; ++k) order_[k] = k;
    std::uint64_t state = splitmix64(seed_ ^ splitmix64(epoch + 0x5eedULL));
    for (std::uint64_t k = n - 1; k > 0; --k) {
      state = splitmix64(state);
      std::swap(order_[k], order_[state % (k + 1)]);
    }
    order_epoch_ = epoch;
  }
  return v[order_[i % n]];
}

std::optional<std::int64_t> file_task_source::size(split s) const {
  return static_cast<std::int64_t>(s == split::train ? train_.size() : eval_.size());
}

std::string file_task_source::describe() const {
  return "file " + path_ + " (" + std::to_string(train_.size()) + " train, " + std::to_string(eval_.size()) + " eval)";
}

}  // namespace troupe
