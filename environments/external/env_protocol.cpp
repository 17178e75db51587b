#include "environments/external/env_protocol.hpp"

#include <msgpack.hpp>

#include <cstring>
#include <map>

#include "core/error.hpp"

namespace troupe::env_protocol {

namespace {

// --- encoding -------------------------------------------------------------------------

// msgpack's packer writes into anything with write(); appending to a std::string lets
// callers reuse one buffer for every message.
struct string_sink {
  std::string& s;
  void write(const char* p, std::size_t n) { s.append(p, n); }
};
using packer = msgpack::packer<string_sink>;

void pack_str(packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_strings(packer& pk, const std::vector<std::string>& v) {
  pk.pack_array(static_cast<std::uint32_t>(v.size()));
  for (const auto& s : v) pack_str(pk, s);
}

void pack_string_map(packer& pk, const std::map<std::string, std::string>& m) {
  pk.pack_map(static_cast<std::uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    pack_str(pk, k);
    pack_str(pk, v);
  }
}

// A number as msgpack float64, always. msgpack-cxx's pack_double writes integral values
// as integers, and its range check lets 2^64 through into an out-of-range uint64_t
// cast (undefined behaviour; the env_protocol fuzzer found it). The packer writes
// straight into `sink`, so appending here keeps the order.
void pack_number(string_sink& sink, double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
  sink.write(buf, sizeof buf);
}

// Starts a message map of `n` fields beyond type and id.
void pack_head(packer& pk, std::string_view type, std::uint64_t id, std::uint32_t n) {
  pk.pack_map(n + 2);
  pack_str(pk, "type");
  pack_str(pk, type);
  pack_str(pk, "id");
  pk.pack_uint64(id);
}

// --- decoding -------------------------------------------------------------------------

const char* kind_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "an integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a number";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "binary bytes";
    case msgpack::type::ARRAY: return "a list";
    case msgpack::type::MAP: return "a map";
    default: return "an extension value";
  }
}

[[noreturn]] void wrong(const std::string& where, const char* want, const msgpack::object& got) {
  throw input_error(where + ": expected " + want + ", got " + kind_name(got));
}

std::string as_string(const msgpack::object& o, const std::string& where) {
  if (o.type != msgpack::type::STR) wrong(where, "a string", o);
  return std::string(o.via.str.ptr, o.via.str.size);
}

// The fields of one msgpack map, looked up by name. `where` prefixes every error.
class fields {
 public:
  fields(const msgpack::object& o, std::string where, const limits& lim) : where_(std::move(where)) {
    if (o.type != msgpack::type::MAP) wrong(where_, "a map", o);
    if (o.via.map.size > lim.max_entries)
      throw input_error(where_ + ": " + std::to_string(o.via.map.size) + " entries, more than " +
                        std::to_string(lim.max_entries));
    map_ = &o.via.map;
  }

  const msgpack::object* find(std::string_view key) const {
    for (std::uint32_t i = 0; i < map_->size; ++i) {
      const auto& k = map_->ptr[i].key;
      if (k.type == msgpack::type::STR && std::string_view(k.via.str.ptr, k.via.str.size) == key) return &map_->ptr[i].val;
    }
    return nullptr;
  }
  const msgpack::object& need(const char* key) const {
    if (const auto* o = find(key)) return *o;
    throw input_error(where_ + ": missing field '" + key + "'");
  }
  std::string path(const char* key) const { return where_ + ": field '" + key + "'"; }

  std::string str(const char* key) const { return as_string(need(key), path(key)); }
  std::string str_or_empty(const char* key) const {
    const auto* o = find(key);
    return o == nullptr ? std::string() : as_string(*o, path(key));
  }
  std::uint64_t uint(const char* key) const {
    const auto& o = need(key);
    if (o.type != msgpack::type::POSITIVE_INTEGER) wrong(path(key), "a non-negative integer", o);
    return o.via.u64;
  }
  int small_int(const char* key) const {
    const auto& o = need(key);
    if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= 1000000) return static_cast<int>(o.via.u64);
    if (o.type == msgpack::type::NEGATIVE_INTEGER && o.via.i64 >= -1000000) return static_cast<int>(o.via.i64);
    wrong(path(key), "an integer", o);
  }
  bool boolean(const char* key) const {
    const auto& o = need(key);
    if (o.type != msgpack::type::BOOLEAN) wrong(path(key), "true or false", o);
    return o.via.boolean;
  }
  std::vector<std::string> strings_or_empty(const char* key, const limits& lim) const {
    const auto* o = find(key);
    std::vector<std::string> out;
    if (o == nullptr) return out;
    if (o->type != msgpack::type::ARRAY) wrong(path(key), "a list of strings", *o);
    if (o->via.array.size > lim.max_entries)
      throw input_error(path(key) + ": more than " + std::to_string(lim.max_entries) + " items");
    for (std::uint32_t i = 0; i < o->via.array.size; ++i)
      out.push_back(as_string(o->via.array.ptr[i], path(key) + "[" + std::to_string(i) + "]"));
    return out;
  }
  // A map of string keys; `value` converts each entry's value.
  template <class T, class F>
  std::map<std::string, T> map_of(const char* key, bool required, const limits& lim, F value) const {
    const auto* o = required ? &need(key) : find(key);
    std::map<std::string, T> out;
    if (o == nullptr) return out;
    fields inner(*o, path(key), lim);
    for (std::uint32_t i = 0; i < inner.map_->size; ++i) {
      const auto& kv = inner.map_->ptr[i];
      std::string k = as_string(kv.key, path(key) + " key");
      out[k] = value(kv.val, where_ + ": field '" + key + "." + k + "'");
    }
    return out;
  }

 private:
  std::string where_;
  const msgpack::object_map* map_ = nullptr;
};

std::map<std::string, std::string> string_map(const fields& f, const char* key, bool required, const limits& lim) {
  return f.map_of<std::string>(key, required, lim, as_string);
}

double as_number(const msgpack::object& o, const std::string& where) {
  switch (o.type) {
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::POSITIVE_INTEGER: return static_cast<double>(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER: return static_cast<double>(o.via.i64);
    default: wrong(where, "a number", o);
  }
}

// Strings reference the frame instead of being copied into the zone: every decoder
// copies what it keeps into std::strings before the frame goes away.
bool reference_strings(msgpack::type::object_type type, std::size_t, void*) {
  return type == msgpack::type::STR || type == msgpack::type::BIN;
}

// Parses `frame` into `handle` and returns the top-level map's fields with its type.
struct parsed {
  msgpack::object_handle handle;
  std::string type;
  std::uint64_t id = 0;
};

void parse(std::string_view frame, const limits& lim, const char* who, parsed& out) {
  if (frame.size() > lim.max_frame_bytes)
    throw input_error(std::string(who) + ": a frame of " + std::to_string(frame.size()) + " bytes, more than " +
                      std::to_string(lim.max_frame_bytes));
  const auto n = lim.max_entries;
  // Depth 4 covers the deepest message (reset: message > task > metadata > value).
  msgpack::unpack_limit ul(n, n, lim.max_frame_bytes, lim.max_frame_bytes, 0, 4);
  std::size_t off = 0;
  try {
    msgpack::unpack(out.handle, frame.data(), frame.size(), off, reference_strings, nullptr, ul);
  } catch (const msgpack::insufficient_bytes&) {
    throw input_error(std::string(who) + ": not a complete msgpack value (" + std::to_string(frame.size()) + " bytes)");
  } catch (const std::exception& e) {
    throw input_error(std::string(who) + ": not valid msgpack (" + e.what() + ")");
  }
  if (off != frame.size())
    throw input_error(std::string(who) + ": " + std::to_string(frame.size() - off) + " bytes after the msgpack value");
  fields f(out.handle.get(), who, lim);
  out.type = f.str("type");
  out.id = f.uint("id");
}

}  // namespace

void encode(const request& m, std::string& out) {
  out.clear();
  string_sink sink{out};
  packer pk(sink);
  if (m.type == "hello") {
    pack_head(pk, m.type, m.id, 2);
    pack_str(pk, "protocol");
    pk.pack_int(m.protocol);
    pack_str(pk, "client");
    pack_str(pk, m.client);
  } else if (m.type == "reset") {
    pack_head(pk, m.type, m.id, 2);
    pack_str(pk, "env");
    pack_str(pk, m.env);
    pack_str(pk, "task");
    pk.pack_map(3);
    pack_str(pk, "id");
    pack_str(pk, m.t.id);
    pack_str(pk, "prompt");
    pack_str(pk, m.t.prompt);
    pack_str(pk, "metadata");
    pack_string_map(pk, m.t.metadata);
  } else if (m.type == "step") {
    pack_head(pk, m.type, m.id, 2);
    pack_str(pk, "episode");
    pack_str(pk, m.episode);
    pack_str(pk, "action");
    pack_str(pk, m.action);
  } else if (m.type == "close") {
    pack_head(pk, m.type, m.id, 1);
    pack_str(pk, "episode");
    pack_str(pk, m.episode);
  } else {
    pack_head(pk, m.type, m.id, 0);  // ping, or a type a test wants to send as is
  }
}

void encode(const reply& m, std::string& out) {
  out.clear();
  string_sink sink{out};
  packer pk(sink);
  if (m.type == "welcome") {
    pack_head(pk, m.type, m.id, 2);
    pack_str(pk, "protocol");
    pk.pack_int(m.protocol);
    pack_str(pk, "environments");
    pk.pack_array(static_cast<std::uint32_t>(m.environments.size()));
    for (const auto& e : m.environments) {
      pk.pack_map(2);
      pack_str(pk, "name");
      pack_str(pk, e.name);
      pack_str(pk, "summary");
      pack_str(pk, e.summary);
    }
  } else if (m.type == "observation") {
    pack_head(pk, m.type, m.id, 3);
    pack_str(pk, "episode");
    pack_str(pk, m.episode);
    pack_str(pk, "text");
    pack_str(pk, m.obs.text);
    pack_str(pk, "stop_strings");
    pack_strings(pk, m.obs.stop_strings);
  } else if (m.type == "step_result") {
    pack_head(pk, m.type, m.id, 5);
    pack_str(pk, "observation");
    pack_str(pk, m.result.next.text);
    pack_str(pk, "stop_strings");
    pack_strings(pk, m.result.next.stop_strings);
    pack_str(pk, "rewards");
    pk.pack_map(static_cast<std::uint32_t>(m.result.rewards.size()));
    for (const auto& [k, v] : m.result.rewards) {
      pack_str(pk, k);
      pack_number(sink, v);
    }
    pack_str(pk, "done");
    if (m.result.done) pk.pack_true();
    else pk.pack_false();
    pack_str(pk, "info");
    pack_string_map(pk, m.result.info);
  } else if (m.type == "error") {
    pack_head(pk, m.type, m.id, 2);
    pack_str(pk, "code");
    pack_str(pk, m.code);
    pack_str(pk, "message");
    pack_str(pk, m.message);
  } else {
    pack_head(pk, m.type, m.id, 0);  // pong
  }
}

request decode_request(std::string_view frame, const limits& lim) {
  parsed p;
  parse(frame, lim, "request", p);
  request r;
  r.type = p.type;
  r.id = p.id;
  fields f(p.handle.get(), r.type, lim);
  if (r.type == "hello") {
    r.protocol = f.small_int("protocol");
    r.client = f.str_or_empty("client");
  } else if (r.type == "reset") {
    r.env = f.str("env");
    fields t(f.need("task"), "reset: field 'task'", lim);
    r.t.id = t.str("id");
    r.t.prompt = t.str("prompt");
    r.t.metadata = string_map(t, "metadata", false, lim);
  } else if (r.type == "step") {
    r.episode = f.str("episode");
    r.action = f.str("action");
  } else if (r.type == "close") {
    r.episode = f.str("episode");
  } else if (r.type != "ping") {
    throw input_error("request: unknown type '" + r.type + "' (hello, reset, step, close, ping)");
  }
  return r;
}

reply decode_reply(std::string_view frame, const limits& lim) {
  parsed p;
  parse(frame, lim, "reply", p);
  reply r;
  r.type = p.type;
  r.id = p.id;
  fields f(p.handle.get(), r.type, lim);
  if (r.type == "welcome") {
    r.protocol = f.small_int("protocol");
    const auto& envs = f.need("environments");
    if (envs.type != msgpack::type::ARRAY) wrong(f.path("environments"), "a list", envs);
    for (std::uint32_t i = 0; i < envs.via.array.size; ++i) {
      fields e(envs.via.array.ptr[i], "welcome: environments[" + std::to_string(i) + "]", lim);
      r.environments.push_back({e.str("name"), e.str_or_empty("summary")});
    }
  } else if (r.type == "observation") {
    r.episode = f.str("episode");
    if (r.episode.empty()) throw input_error("observation: field 'episode' is empty");
    r.obs.text = f.str("text");
    r.obs.stop_strings = f.strings_or_empty("stop_strings", lim);
  } else if (r.type == "step_result") {
    r.result.next.text = f.str("observation");
    r.result.next.stop_strings = f.strings_or_empty("stop_strings", lim);
    r.result.rewards = f.map_of<double>("rewards", true, lim, as_number);
    r.result.done = f.boolean("done");
    r.result.info = string_map(f, "info", false, lim);
  } else if (r.type == "error") {
    r.code = f.str("code");
    r.message = f.str_or_empty("message");
  } else if (r.type != "pong") {
    throw input_error("reply: unknown type '" + r.type + "' (welcome, observation, step_result, pong, error)");
  }
  return r;
}

}  // namespace troupe::env_protocol
