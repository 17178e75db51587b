// Binding a config_node tree to typed structs, validating it, and printing it back.
//
// A config section is a plain struct whose member initializers are its defaults and
// whose `describe` lists its fields, once:
//
//   struct trainer_section {
//     double lr = 1e-5;
//     int microbatch_size = 4;
//     template <class V> void describe(V& v) {
//       v.field("lr", lr, "AdamW learning rate", at_least(0.0));
//       v.field("microbatch_size", microbatch_size, "sequences per forward pass", at_least(1));
//     }
//   };
//
// describe() is the single source of truth: reading (config_reader), printing
// (config_writer) and the list of valid keys behind "did you mean" all walk it.
// Field types: bool, int, std::int64_t, double, std::string, std::vector<T> (T a scalar
// or a section: a list of mappings, e.g. cluster.workers), std::map<std::string,
// std::string> (free-form options, e.g. an environment's) and nested sections. Every
// error is an input_error naming file:line and the dotted key path.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/config_tree.hpp"
#include "core/error.hpp"

namespace troupe {

// --- checks -------------------------------------------------------------------------
// Each check returns an error text (what is wrong) or nullopt.

template <class T>
struct at_least {
  T lo;
  explicit at_least(T x) : lo(x) {}
  std::optional<std::string> operator()(const T& v) const;
};

template <class T>
struct greater_than {
  T lo;
  explicit greater_than(T x) : lo(x) {}
  std::optional<std::string> operator()(const T& v) const;
};

template <class T>
struct in_range {  // closed interval [lo, hi]
  T lo, hi;
  in_range(T a, T b) : lo(a), hi(b) {}
  std::optional<std::string> operator()(const T& v) const;
};

struct one_of {
  std::vector<std::string> choices;
  one_of(std::initializer_list<std::string> xs) : choices(xs) {}
  std::optional<std::string> operator()(const std::string& v) const;
};

// --- helpers shared by reader and CLI ------------------------------------------------

// Edit distance, for suggesting the closest valid key.
std::size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" for the closest candidate, or " (valid keys: a, b, c)" when
// none is close.
std::string suggest(std::string_view wrong, const std::vector<std::string>& candidates);

std::string format_double(double v);  // shortest text that reads back to the same value

// Lists the field names of a section (for suggestions and docs).
class config_key_lister {
 public:
  template <class T, class... Checks>
  void field(const char* name, T&, const char*, Checks...) {
    names.emplace_back(name);
  }
  std::vector<std::string> names;
};

namespace detail {

template <class T, class = void>
struct is_section : std::false_type {};
template <class T>
struct is_section<
    T, std::void_t<decltype(std::declval<T&>().describe(std::declval<config_key_lister&>()))>>
  : std::true_type {};

template <class T>
struct is_section_list : std::false_type {};
template <class T>
struct is_section_list<std::vector<T>> : is_section<T> {};

std::string describe_node(const config_node& n);  // "the mapping at ...", "'abc'"
[[noreturn]] void fail(const config_node& n, const std::string& path, const std::string& what);

void read_scalar(const config_node& n, const std::string& path, bool& out);
void read_scalar(const config_node& n, const std::string& path, int& out);
void read_scalar(const config_node& n, const std::string& path, std::int64_t& out);
void read_scalar(const config_node& n, const std::string& path, double& out);
void read_scalar(const config_node& n, const std::string& path, std::string& out);

inline std::string join(const std::string& path, const char* name) {
  return path.empty() ? std::string(name) : path + "." + name;
}

}  // namespace detail

// Reads one mapping node into a section. Use read_config() below.
class config_reader {
 public:
  config_reader(const config_node& node, std::string path) : node_(node), path_(std::move(path)) {}

  template <class T, class... Checks>
  void field(const char* name, T& value, const char* /*doc*/, Checks... checks) {
    known_.emplace_back(name);
    const config_node* child = node_.find(name);
    if (child == nullptr) return;  // the default stays
    auto path = detail::join(path_, name);
    read_value(*child, path, value);
    (check(*child, path, value, checks), ...);
  }

  // Throws for the first key of the node that no field() named.
  void reject_unknown_keys() const;

  template <class T>
  static void read_value(const config_node& n, const std::string& path, T& value) {
    if constexpr (detail::is_section<T>::value) {
      if (n.type != config_node::kind::mapping)
        detail::fail(n, path, "expected a mapping of keys, got " + detail::describe_node(n));
      config_reader sub(n, path);
      value.describe(sub);
      sub.reject_unknown_keys();
    } else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) {
      if (n.type != config_node::kind::mapping)
        detail::fail(n, path, "expected a mapping of options, got " + detail::describe_node(n));
      T out;
      for (const auto& [key, child] : n.entries) detail::read_scalar(child, path + "." + key, out[key]);
      value = std::move(out);
    } else if constexpr (is_vector<T>::value) {
      if (n.type != config_node::kind::sequence)
        detail::fail(n, path, "expected a list, got " + detail::describe_node(n));
      T out(n.items.size());
      for (std::size_t i = 0; i < n.items.size(); ++i)
        read_value(n.items[i], path + "[" + std::to_string(i) + "]", out[i]);
      value = std::move(out);
    } else {
      detail::read_scalar(n, path, value);
    }
  }

 private:
  template <class T>
  struct is_vector : std::false_type {};
  template <class T>
  struct is_vector<std::vector<T>> : std::true_type {};

  template <class T, class Check>
  static void check(const config_node& n, const std::string& path, const T& v, const Check& c) {
    if (auto err = c(v)) detail::fail(n, path, *err);
  }

  const config_node& node_;
  std::string path_;
  std::vector<std::string> known_;
};

// Writes a section as YAML, one comment per field with its doc string.
class config_writer {
 public:
  explicit config_writer(int indent = 0) : indent_(indent) {}

  template <class T, class... Checks>
  void field(const char* name, const T& value, const char* doc, Checks...) {
    if constexpr (detail::is_section<T>::value) {
      line(std::string(name) + ":", doc);
      config_writer sub(indent_ + 2);
      T copy = value;
      copy.describe(sub);
      text += sub.text;
    } else if constexpr (detail::is_section_list<T>::value) {
      // A list of sections is written in block style, one "- " item per element:
      //   workers:
      //     - name: "a"
      //       generators: 1
      if (value.empty()) return line(std::string(name) + ": []", doc);
      line(std::string(name) + ":", doc);
      for (const auto& element : value) {
        config_writer sub(indent_ + 4);
        auto copy = element;
        copy.describe(sub);
        if (sub.text.empty()) {
          text.append(static_cast<std::size_t>(indent_ + 2), ' ');
          text += "- {}\n";
          continue;
        }
        sub.text[static_cast<std::size_t>(indent_ + 2)] = '-';  // "    name" -> "  - name"
        text += sub.text;
      }
    } else {
      line(std::string(name) + ": " + render(value), doc);
    }
  }

  std::string text;

 private:
  void line(const std::string& body, const char* doc);
  static std::string render(bool v) { return v ? "true" : "false"; }
  static std::string render(int v) { return std::to_string(v); }
  static std::string render(std::int64_t v) { return std::to_string(v); }
  static std::string render(double v) { return format_double(v); }
  static std::string render(const std::string& v);
  static std::string render(const std::map<std::string, std::string>& m) {
    std::string out = "{";
    for (const auto& [k, v] : m) out += (out.size() > 1 ? ", " : "") + render(k) + ": " + render(v);
    return out + "}";
  }
  template <class T>
  static std::string render(const std::vector<T>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + render(v[i]);
    return out + "]";
  }

  int indent_;
};

// Binds the whole tree to the top-level section T (which has describe()).
template <class T>
T read_config(const config_node& root) {
  T out;
  config_reader::read_value(root, "", out);
  return out;
}

// The resolved config as YAML text with comments: what --print-config shows and what a
// run directory stores. Reading it back gives the same values.
template <class T>
std::string write_config(const T& section) {
  config_writer w;
  T copy = section;
  copy.describe(w);
  return w.text;
}

}  // namespace troupe
