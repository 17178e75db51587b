#include "policies/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/error.hpp"

namespace troupe {

namespace {

using json = nlohmann::json;

// The Rust implementation refuses larger headers; so do we, before allocating anything.
constexpr std::uint64_t max_header_bytes = 100'000'000;
constexpr const char* metadata_key = "__metadata__";
constexpr const char* single_file_name = "model.safetensors";
constexpr const char* index_file_name = "model.safetensors.index.json";

struct dtype_info {
  st_dtype type;
  const char* name;
  std::size_t size;
  // Position in the Rust library's Dtype enum, which its writer sorts by (largest
  // first) so that every tensor's data is aligned to its element size.
  int writer_rank;
};

constexpr dtype_info dtype_table[] = {
    {st_dtype::f32, "F32", 4, 7},  {st_dtype::f16, "F16", 2, 4}, {st_dtype::bf16, "BF16", 2, 5},
    {st_dtype::f64, "F64", 8, 8},  {st_dtype::i64, "I64", 8, 9}, {st_dtype::i32, "I32", 4, 6},
    {st_dtype::i16, "I16", 2, 3},  {st_dtype::i8, "I8", 1, 2},   {st_dtype::u8, "U8", 1, 1},
    {st_dtype::boolean, "BOOL", 1, 0},
};

const dtype_info& info_of(st_dtype t) {
  for (const auto& d : dtype_table)
    if (d.type == t) return d;
  throw input_error("safetensors: invalid st_dtype value " + std::to_string(static_cast<int>(t)));
}

std::string join_shape(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string offsets_text(std::uint64_t begin, std::uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// Bytes needed by `shape` of `dtype`, or false when a dimension is negative or the
// product does not fit in 64 bits. A zero dimension makes the tensor empty whatever
// the others are.
bool bytes_for(st_dtype dtype, const std::vector<std::int64_t>& shape, std::uint64_t& bytes) {
  std::uint64_t n = st_dtype_size(dtype);
  for (std::int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) {
      bytes = 0;
      return true;
    }
  }
  for (std::int64_t d : shape)
    if (__builtin_mul_overflow(n, static_cast<std::uint64_t>(d), &n)) return false;
  bytes = n;
  return true;
}

std::uint64_t read_le_u64(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<std::uint64_t>(p[i]);
  return v;
}

// A JSON integer >= 0 that fits in int64 (shape dimensions and offsets).
bool non_negative_int(const json& v, std::int64_t& out) {
  if (v.is_number_unsigned()) {
    auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
    out = static_cast<std::int64_t>(u);
    return true;
  }
  if (v.is_number_integer()) {
    out = v.get<std::int64_t>();
    return out >= 0;
  }
  return false;
}

// JSON text of a string, as serde_json writes it; throws input_error for invalid UTF-8.
std::string json_string(const std::string& s, const std::string& what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    throw input_error(what + " is not valid UTF-8");
  }
}

struct parsed_file {
  std::map<std::string, std::string> metadata;
  std::vector<std::string> names;
  std::map<std::string, st_tensor_view> tensors;
};

void parse_metadata(const json& value, const std::string& source, parsed_file& out) {
  if (!value.is_object())
    throw input_error(source + ": \"__metadata__\" must be an object of strings, got " + value.type_name());
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      throw input_error(source + ": \"__metadata__\" value of '" + key + "' must be a string, got " +
                        v.type_name());
    out.metadata[key] = v.get<std::string>();
  }
}

struct tensor_span {
  std::uint64_t begin;
  std::uint64_t end;
  const std::string* name;
};

// Validates one header entry; returns its [begin, end) within the data buffer.
tensor_span parse_entry(const std::string& name, const json& entry, const std::byte* buffer,
                        std::uint64_t buffer_size, const std::string& source, parsed_file& out) {
  const std::string where = source + ": tensor '" + name + "'";
  if (!entry.is_object()) throw input_error(where + ": entry must be a JSON object, got " + entry.type_name());

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) throw input_error(where + ": missing \"dtype\"");
  if (!dtype_it->is_string()) throw input_error(where + ": \"dtype\" must be a string, got " + dtype_it->type_name());
  st_dtype dtype = parse_st_dtype(dtype_it->get<std::string>(), where);

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) throw input_error(where + ": missing \"shape\"");
  if (!shape_it->is_array()) throw input_error(where + ": \"shape\" must be an array, got " + shape_it->type_name());
  std::vector<std::int64_t> shape;
  shape.reserve(shape_it->size());
  for (const auto& d : *shape_it) {
    std::int64_t v = 0;
    if (!non_negative_int(d, v))
      throw input_error(where + ": \"shape\" entries must be integers >= 0, got " + d.dump());
    shape.push_back(v);
  }

  auto off_it = entry.find("data_offsets");
  if (off_it == entry.end()) throw input_error(where + ": missing \"data_offsets\"");
  std::int64_t begin = 0;
  std::int64_t end = 0;
  if (!off_it->is_array() || off_it->size() != 2 || !non_negative_int((*off_it)[0], begin) ||
      !non_negative_int((*off_it)[1], end))
    throw input_error(where + ": \"data_offsets\" must be [begin, end] of integers >= 0, got " + off_it->dump());
  const auto b = static_cast<std::uint64_t>(begin);
  const auto e = static_cast<std::uint64_t>(end);
  if (b > e) throw input_error(where + ": data_offsets " + offsets_text(b, e) + " begin after they end");

  std::uint64_t needed = 0;
  if (!bytes_for(dtype, shape, needed))
    throw input_error(where + ": " + st_dtype_name(dtype) + " " + join_shape(shape) +
                      " has more bytes than fit in 64 bits");
  if (e - b != needed)
    throw input_error(where + ": data_offsets " + offsets_text(b, e) + " hold " + std::to_string(e - b) +
                      " bytes but " + st_dtype_name(dtype) + " " + join_shape(shape) + " needs " +
                      std::to_string(needed));
  if (e > buffer_size)
    throw input_error(where + ": data_offsets " + offsets_text(b, e) + " run past the end of the " +
                      std::to_string(buffer_size) + "-byte data buffer (is the file truncated?)");

  st_tensor_view view;
  view.name = name;
  view.dtype = dtype;
  view.shape = std::move(shape);
  view.data = buffer + b;
  view.size_bytes = static_cast<std::size_t>(needed);
  auto [it, inserted] = out.tensors.emplace(name, std::move(view));
  (void)inserted;  // the parser already rejected duplicate keys
  return {b, e, &it->first};
}

// Validates a whole file held at [bytes, bytes + size).
parsed_file parse_file(const std::byte* bytes, std::uint64_t size, const std::string& source) {
  if (size < 8)
    throw input_error(source + ": file is " + std::to_string(size) +
                      " bytes, shorter than the 8-byte header length");
  const std::uint64_t n = read_le_u64(bytes);
  if (n > max_header_bytes)
    throw input_error(source + ": header length " + std::to_string(n) + " is over the limit of " +
                      std::to_string(max_header_bytes) + " bytes (not a safetensors file?)");
  if (n > size - 8)
    throw input_error(source + ": header length " + std::to_string(n) + " runs past the end of the " +
                      std::to_string(size) + "-byte file");

  const char* text = reinterpret_cast<const char*>(bytes + 8);
  // nlohmann keeps the last of duplicate keys; a tensor named twice is an error instead.
  std::set<std::string> keys;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && duplicate.empty() &&
        !keys.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    throw input_error(source + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw input_error(source + ": header must be a JSON object, got " + header.type_name());
  if (!duplicate.empty()) throw input_error(source + ": tensor '" + duplicate + "' appears twice in the header");

  parsed_file out;
  const std::byte* buffer = bytes + 8 + n;
  const std::uint64_t buffer_size = size - 8 - n;
  std::vector<tensor_span> spans;
  spans.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == metadata_key)
      parse_metadata(entry, source, out);
    else
      spans.push_back(parse_entry(name, entry, buffer, buffer_size, source, out));
  }

  std::sort(spans.begin(), spans.end(), [](const tensor_span& a, const tensor_span& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return *a.name < *b.name;
  });
  const tensor_span* previous = nullptr;  // the non-empty span reaching furthest so far
  for (const auto& s : spans) {
    if (s.begin == s.end) continue;
    if (previous && s.begin < previous->end)
      throw input_error(source + ": tensors '" + *previous->name + "' " + offsets_text(previous->begin, previous->end) +
                        " and '" + *s.name + "' " + offsets_text(s.begin, s.end) + " overlap");
    previous = &s;
  }
  out.names.reserve(spans.size());
  for (const auto& s : spans) out.names.push_back(*s.name);
  return out;
}

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A file written under a temporary name in the same directory and renamed over
// `path` on commit(), so readers see the old file or the whole new one. Dropped
// without commit() (an error on the way), the temporary file is removed.
class atomic_file {
 public:
  explicit atomic_file(std::string path) : path_(std::move(path)) {
    static std::atomic<unsigned> counter{0};
    tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) fail(errno);
  }
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;
  ~atomic_file() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, std::min<std::size_t>(size, std::size_t{1} << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail(n < 0 ? errno : ENOSPC);
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail(errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail(errno);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail(errno);
    committed_ = true;
    // Make the rename itself durable; some file systems refuse fsync on a directory.
    auto slash = path_.rfind('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  [[noreturn]] void fail(int err) const { throw system_error("cannot write '" + path_ + "': " + errno_text(err)); }

  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

void check_out_tensor(const st_tensor_out& t) {
  const std::string where = "write_safetensors: tensor '" + t.name + "'";
  if (t.name == metadata_key) throw input_error(where + ": the name is reserved for metadata");
  json_string(t.name, where + ": the name");
  std::uint64_t needed = 0;
  if (!bytes_for(t.dtype, t.shape, needed))
    throw input_error(where + ": shape " + join_shape(t.shape) + " has a negative dimension or too many bytes");
  if (needed != t.size_bytes)
    throw input_error(where + ": size_bytes is " + std::to_string(t.size_bytes) + " but " +
                      st_dtype_name(t.dtype) + " " + join_shape(t.shape) + " needs " + std::to_string(needed));
  if (t.size_bytes > 0 && t.data == nullptr) throw input_error(where + ": data is null");
}

void check_out_tensors(const std::vector<st_tensor_out>& tensors) {
  std::set<std::string> seen;
  for (const auto& t : tensors) {
    check_out_tensor(t);
    if (!seen.insert(t.name).second)
      throw input_error("write_safetensors: tensor '" + t.name + "' is given twice");
  }
}

void write_checked(const std::string& path, const std::vector<const st_tensor_out*>& tensors,
                   const std::map<std::string, std::string>& metadata) {
  // The Python library's layout: largest element size first, then by name.
  std::vector<const st_tensor_out*> order = tensors;
  std::sort(order.begin(), order.end(), [](const st_tensor_out* a, const st_tensor_out* b) {
    int ra = info_of(a->dtype).writer_rank;
    int rb = info_of(b->dtype).writer_rank;
    if (ra != rb) return ra > rb;
    return a->name < b->name;
  });

  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      if (!first) header += ",";
      first = false;
      header += json_string(k, "write_safetensors: metadata key '" + k + "'") + ":" +
                json_string(v, "write_safetensors: metadata value of '" + k + "'");
    }
    header += "}";
  }
  std::uint64_t offset = 0;
  for (const st_tensor_out* t : order) {
    if (header.size() > 1) header += ",";
    header += json_string(t->name, "write_safetensors: tensor name '" + t->name + "'");
    header += ":{\"dtype\":\"";
    header += st_dtype_name(t->dtype);
    header += "\",\"shape\":[";
    for (std::size_t i = 0; i < t->shape.size(); ++i) {
      if (i) header += ",";
      header += std::to_string(t->shape[i]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + ",";
    offset += t->size_bytes;
    header += std::to_string(offset) + "]}";
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > max_header_bytes)
    throw input_error("write_safetensors: '" + path + "': the header of " + std::to_string(order.size()) +
                      " tensors would be " + std::to_string(header.size()) +
                      " bytes, over the limit readers accept; split the tensors into more files");

  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(header.size() >> (8 * i));
  atomic_file file(path);
  file.write(length, sizeof length);
  file.write(header.data(), header.size());
  for (const st_tensor_out* t : order) file.write(t->data, t->size_bytes);
  file.commit();
}

void remove_if_present(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    throw system_error("cannot remove stale '" + path + "': " + errno_text(errno));
}

void make_directories(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw system_error("cannot create checkpoint directory '" + dir + "': " + ec.message());
  if (!std::filesystem::is_directory(dir, ec))
    throw system_error("cannot create checkpoint directory '" + dir + "': a file is in the way");
}

std::string shard_name(std::size_t i, std::size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i, n);
  return buf;
}

std::string read_small_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw input_error(path + ": cannot open: " + errno_text(errno));
  std::string content;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw system_error(path + ": cannot read: " + errno_text(err));
    }
    if (n == 0) break;
    content.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return content;
}

}  // namespace

st_dtype parse_st_dtype(const std::string& name, const std::string& context) {
  for (const auto& d : dtype_table)
    if (name == d.name) return d.type;
  throw input_error(context + ": unknown dtype '" + name +
                    "' (troupe reads F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)");
}

const char* st_dtype_name(st_dtype t) { return info_of(t).name; }

std::size_t st_dtype_size(st_dtype t) { return info_of(t).size; }

// The bytes behind a safetensors_file: a read-only mapping of the file, or a buffer
// handed to from_bytes.
struct safetensors_file::mapping {
  void* address = MAP_FAILED;
  std::size_t length = 0;
  std::vector<std::byte> owned;

  mapping() = default;
  mapping(const mapping&) = delete;
  mapping& operator=(const mapping&) = delete;
  ~mapping() {
    if (address != MAP_FAILED) ::munmap(address, length);
  }
  const std::byte* data() const {
    return address != MAP_FAILED ? static_cast<const std::byte*>(address) : owned.data();
  }
  std::size_t size() const { return address != MAP_FAILED ? length : owned.size(); }
};

safetensors_file::safetensors_file(safetensors_file&&) noexcept = default;
safetensors_file& safetensors_file::operator=(safetensors_file&&) noexcept = default;
safetensors_file::~safetensors_file() = default;

safetensors_file safetensors_file::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) throw input_error(path + ": no such file");
    throw system_error(path + ": cannot open: " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw system_error(path + ": cannot stat: " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw input_error(path + ": not a regular file");
  }
  auto map = std::make_unique<mapping>();
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size >= 8) {
    // A private read-only mapping: another process truncating the file while it is
    // mapped makes reads past the new end fault (SIGBUS); checkpoints are written by
    // rename, so a mapped file is never truncated in place by troupe.
    map->address = ::mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (map->address == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw system_error(path + ": cannot map: " + errno_text(err));
    }
    map->length = static_cast<std::size_t>(size);
  }
  ::close(fd);

  return assemble(std::move(map), path);
}

safetensors_file safetensors_file::assemble(std::unique_ptr<mapping> map, const std::string& source_name) {
  parsed_file parsed = parse_file(map->data(), map->size(), source_name);
  safetensors_file file;
  file.map_ = std::move(map);
  file.path_ = source_name;
  file.metadata_ = std::move(parsed.metadata);
  file.names_ = std::move(parsed.names);
  file.tensors_ = std::move(parsed.tensors);
  return file;
}

safetensors_file safetensors_file::from_bytes(std::vector<std::byte> bytes, const std::string& source_name) {
  auto map = std::make_unique<mapping>();
  map->owned = std::move(bytes);
  return assemble(std::move(map), source_name);
}

bool safetensors_file::contains(const std::string& name) const { return tensors_.count(name) > 0; }

const st_tensor_view& safetensors_file::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw input_error(path_ + ": no tensor '" + name + "'");
  return it->second;
}

safetensors_checkpoint safetensors_checkpoint::open_dir(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw input_error(dir + ": not a directory");

  safetensors_checkpoint ckpt;
  ckpt.dir_ = dir;
  // transformers prefers the single file when both layouts are present; so do we.
  const std::string single = join_path(dir, single_file_name);
  if (is_regular_file(single)) {
    ckpt.files_.push_back(safetensors_file::open(single));
    for (const auto& name : ckpt.files_.back().names()) ckpt.where_[name] = 0;
    return ckpt;
  }
  const std::string index_path = join_path(dir, index_file_name);
  if (!is_regular_file(index_path))
    throw input_error(dir + ": no " + single_file_name + " or " + index_file_name + " in this directory");

  json index;
  try {
    index = json::parse(read_small_file(index_path));
  } catch (const json::exception& e) {
    throw input_error(index_path + ": not valid JSON: " + e.what());
  }
  if (!index.is_object()) throw input_error(index_path + ": must be a JSON object, got " + index.type_name());
  auto map_it = index.find("weight_map");
  if (map_it == index.end()) throw input_error(index_path + ": missing \"weight_map\"");
  if (!map_it->is_object())
    throw input_error(index_path + ": \"weight_map\" must be an object, got " + map_it->type_name());

  std::map<std::string, std::size_t> shard_index;  // shard file name -> index into files_
  for (const auto& [name, file_value] : map_it->items()) {
    const std::string where = index_path + ": tensor '" + name + "'";
    if (!file_value.is_string())
      throw input_error(where + ": shard must be a file name string, got " + file_value.type_name());
    const auto shard = file_value.get<std::string>();
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
        shard.find('\0') != std::string::npos)
      throw input_error(where + ": shard '" + shard + "' must be a plain file name inside " + dir);
    auto found = shard_index.find(shard);
    if (found == shard_index.end()) {
      const std::string shard_path = join_path(dir, shard);
      if (!is_regular_file(shard_path))
        throw input_error(where + ": shard '" + shard + "' is missing (" + shard_path + ")");
      ckpt.files_.push_back(safetensors_file::open(shard_path));
      found = shard_index.emplace(shard, ckpt.files_.size() - 1).first;
    }
    if (!ckpt.files_[found->second].contains(name))
      throw input_error(where + ": listed in shard '" + shard + "', which has no such tensor");
    ckpt.where_[name] = found->second;
  }
  return ckpt;
}

std::vector<std::string> safetensors_checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& entry : where_) out.push_back(entry.first);
  return out;
}

bool safetensors_checkpoint::contains(const std::string& name) const { return where_.count(name) > 0; }

const st_tensor_view& safetensors_checkpoint::tensor(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw input_error(dir_ + ": no tensor '" + name + "' in the checkpoint");
  return files_[it->second].tensor(name);
}

const std::string& safetensors_checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw input_error(dir_ + ": no tensor '" + name + "' in the checkpoint");
  return files_[it->second].path();
}

void write_safetensors(const std::string& path, const std::vector<st_tensor_out>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  check_out_tensors(tensors);
  std::vector<const st_tensor_out*> all;
  all.reserve(tensors.size());
  for (const auto& t : tensors) all.push_back(&t);
  write_checked(path, all, metadata);
}

void write_safetensors_checkpoint(const std::string& dir, const std::vector<st_tensor_out>& tensors,
                                  std::size_t max_shard_bytes) {
  check_out_tensors(tensors);
  make_directories(dir);

  // Greedy split in the given order, as huggingface_hub does: a new shard starts when
  // the next tensor would push the current one past the limit.
  std::vector<std::vector<const st_tensor_out*>> shards(1);
  std::uint64_t shard_bytes = 0;
  std::uint64_t total = 0;
  for (const auto& t : tensors) {
    if (!shards.back().empty() && shard_bytes + t.size_bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += t.size_bytes;
    total += t.size_bytes;
  }

  // transformers refuses files whose "format" is not one it knows.
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (shards.size() == 1) {
    write_checked(join_path(dir, single_file_name), shards[0], metadata);
    remove_if_present(join_path(dir, index_file_name));
    return;
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", json::object()}};
  for (std::size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_name(i + 1, shards.size());
    write_checked(join_path(dir, name), shards[i], metadata);
    for (const st_tensor_out* t : shards[i]) index["weight_map"][t->name] = name;
  }
  // The index goes last, so it never names a shard that is not written yet.
  const std::string text = index.dump(2) + "\n";
  atomic_file file(join_path(dir, index_file_name));
  file.write(text.data(), text.size());
  file.commit();
  remove_if_present(join_path(dir, single_file_name));
}

}  // namespace troupe
