#include "policies/safetensors.hpp"

#include <gtest/gtest.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

using testing::temp_dir;

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

const std::string fixtures = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/safetensors";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

// A safetensors file: 8-byte little-endian length, `header`, then `data`.
std::string file_with(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

safetensors_file parse(const std::string& content, const std::string& source = "bad.safetensors") {
  std::vector<std::byte> bytes(content.size());
  if (!content.empty()) std::memcpy(bytes.data(), content.data(), content.size());
  return safetensors_file::from_bytes(std::move(bytes), source);
}

// Runs `f`, which must throw input_error, and returns its text.
std::string input_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw something other than input_error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

void expect_mentions(const std::string& text, std::initializer_list<std::string> parts) {
  for (const auto& part : parts)
    EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' missing from: " << text;
}

// Parses a header (with `data` after it) that must be rejected; checks the error names
// the file and every one of `parts`.
void expect_rejected(const std::string& header, const std::string& data, std::initializer_list<std::string> parts) {
  SCOPED_TRACE(header);
  std::string text = input_error_of([&] { parse(file_with(header, data)); });
  expect_mentions(text, {"bad.safetensors"});
  expect_mentions(text, parts);
}

template <typename T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string view_bytes(const st_tensor_view& v) { return std::string(reinterpret_cast<const char*>(v.data), v.size_bytes); }

template <typename T>
st_tensor_out out_of(const std::string& name, st_dtype dtype, std::vector<std::int64_t> shape, const std::vector<T>& v) {
  return st_tensor_out{name, dtype, std::move(shape), v.empty() ? nullptr : v.data(), v.size() * sizeof(T)};
}

// The tensors of tests/fixtures/make_safetensors_fixtures.py's all_dtypes(), given in
// an order unlike the file's so the writer has to sort them.
struct python_tensors {
  std::vector<float> f32 = {-1.5f, -0.5f, 0.0f, 0.25f, 1.0f, 3.5f};
  std::vector<std::uint16_t> f16 = {0x3C00, 0xC000, 0x3800, 0x7BFF};   // 1, -2, 0.5, 65504
  std::vector<std::uint16_t> bf16 = {0x3F80, 0xC000, 0x3F00, 0x4040};  // 1, -2, 0.5, 3
  std::vector<double> f64 = {0.1, -2.5, 1e300};
  std::vector<std::int64_t> i64 = {-(std::int64_t{1} << 40), (std::int64_t{1} << 62) + 1};
  std::vector<std::int32_t> i32 = {-7, 0, 7, std::numeric_limits<std::int32_t>::max()};
  std::vector<std::int16_t> i16 = {-32768, 1, 32767};
  std::vector<std::int8_t> i8 = {-128, 127};
  std::vector<std::uint8_t> u8 = {0, 1, 2, 254, 255};
  std::vector<std::uint8_t> boolean = {1, 0, 1};
  std::vector<float> empty;
  std::vector<float> scalar = {42.0f};

  std::vector<st_tensor_out> all() const {
    return {
        out_of("u8", st_dtype::u8, {5}, u8),
        out_of("f32", st_dtype::f32, {2, 3}, f32),
        out_of("bool", st_dtype::boolean, {3}, boolean),
        out_of("f16", st_dtype::f16, {4}, f16),
        out_of("scalar", st_dtype::f32, {}, scalar),
        out_of("bf16", st_dtype::bf16, {2, 2}, bf16),
        out_of("i8", st_dtype::i8, {2}, i8),
        out_of("f64", st_dtype::f64, {3}, f64),
        out_of("empty", st_dtype::f32, {0, 4}, empty),
        out_of("i16", st_dtype::i16, {3}, i16),
        out_of("i64", st_dtype::i64, {2}, i64),
        out_of("i32", st_dtype::i32, {2, 2}, i32),
    };
  }
};

void expect_same_tensors(const std::vector<st_tensor_out>& expected, const safetensors_file& file) {
  ASSERT_EQ(file.names().size(), expected.size());
  for (const auto& t : expected) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(file.contains(t.name));
    const st_tensor_view& v = file.tensor(t.name);
    EXPECT_EQ(v.name, t.name);
    EXPECT_EQ(v.dtype, t.dtype);
    EXPECT_EQ(v.shape, t.shape);
    ASSERT_EQ(v.size_bytes, t.size_bytes);
    EXPECT_EQ(view_bytes(v), std::string(static_cast<const char*>(t.data), t.size_bytes));
  }
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    ADD_FAILURE() << "cannot list " << dir;
    return out;
  }
  while (const dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------- round trips

TEST(safetensors, round_trips_every_dtype_with_exact_bytes) {
  temp_dir dir;
  python_tensors values;
  write_safetensors(dir / "all.safetensors", values.all());
  safetensors_file file = safetensors_file::open(dir / "all.safetensors");
  EXPECT_EQ(file.path(), dir / "all.safetensors");
  EXPECT_TRUE(file.metadata().empty());
  expect_same_tensors(values.all(), file);
}

TEST(safetensors, dtype_names_and_sizes_match_the_format) {
  const std::vector<std::tuple<st_dtype, std::string, std::size_t>> table = {
      {st_dtype::f32, "F32", 4}, {st_dtype::f16, "F16", 2}, {st_dtype::bf16, "BF16", 2}, {st_dtype::f64, "F64", 8},
      {st_dtype::i64, "I64", 8}, {st_dtype::i32, "I32", 4}, {st_dtype::i16, "I16", 2},   {st_dtype::i8, "I8", 1},
      {st_dtype::u8, "U8", 1},   {st_dtype::boolean, "BOOL", 1}};
  for (const auto& [type, name, size] : table) {
    EXPECT_EQ(st_dtype_name(type), name);
    EXPECT_EQ(st_dtype_size(type), size);
    EXPECT_EQ(parse_st_dtype(name, "ctx"), type);
  }
  expect_mentions(input_error_of([] { parse_st_dtype("F8_E4M3", "here.safetensors"); }),
                  {"here.safetensors", "F8_E4M3"});
}

TEST(safetensors, writes_tensors_by_element_size_then_name_with_8_byte_aligned_data) {
  temp_dir dir;
  python_tensors values;
  write_safetensors(dir / "all.safetensors", values.all());
  std::string bytes = read_bytes(dir / "all.safetensors");
  safetensors_file file = parse(bytes);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"i64", "f64", "empty", "f32", "scalar", "i32", "bf16", "f16",
                                                    "i16", "i8", "u8", "bool"}));

  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ((8 + n) % 8, 0u);
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.rfind('}'), header.find_last_not_of(' ')) << "padding is spaces after the JSON";
  EXPECT_EQ(header.find("\"i64\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}"), 1u) << header;
  for (const auto& name : file.names()) {
    const st_tensor_view& v = file.tensor(name);
    auto offset = static_cast<std::size_t>(v.data - file.tensor("i64").data) + 8 + n;
    EXPECT_EQ(offset % st_dtype_size(v.dtype), 0u) << name;
  }
}

TEST(safetensors, round_trips_metadata) {
  temp_dir dir;
  std::vector<float> v = {1.0f};
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"quote\"and\\slash", "line\nbreak"}, {"unicode", "h\xc3\xa9llo"}, {"empty", ""}};
  write_safetensors(dir / "m.safetensors", {out_of("x", st_dtype::f32, {1}, v)}, metadata);
  safetensors_file file = safetensors_file::open(dir / "m.safetensors");
  EXPECT_EQ(file.metadata(), metadata);
  EXPECT_EQ(file.names(), std::vector<std::string>{"x"});
}

TEST(safetensors, accepts_zero_element_tensors_and_scalars) {
  // A zero dimension makes the tensor empty even when the other dimensions' product
  // would overflow.
  safetensors_file file = parse(file_with(
      R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
      R"("b":{"dtype":"I64","shape":[9223372036854775807,9223372036854775807,0],"data_offsets":[4,4]},)"
      R"("s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
      std::string("\x00\x00\x80\x3f", 4)));
  EXPECT_EQ(file.tensor("a").size_bytes, 0u);
  EXPECT_EQ(file.tensor("b").size_bytes, 0u);
  EXPECT_EQ(file.tensor("s").shape, std::vector<std::int64_t>{});
  float s = 0;
  std::memcpy(&s, file.tensor("s").data, 4);
  EXPECT_EQ(s, 1.0f);
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "s", "b"}));
}

TEST(safetensors, reading_an_empty_file_of_tensors_gives_no_names) {
  safetensors_file file = parse(file_with("{}      "));
  EXPECT_TRUE(file.names().empty());
  EXPECT_FALSE(file.contains("x"));
}

TEST(safetensors, tensor_lookup_of_a_missing_name_names_the_file_and_tensor) {
  safetensors_file file = parse(file_with("{}"), "some.safetensors");
  expect_mentions(input_error_of([&] { file.tensor("lm_head.weight"); }), {"some.safetensors", "'lm_head.weight'"});
}

// ---------------------------------------------------------------- Python interop

TEST(safetensors, reads_every_dtype_written_by_the_python_library) {
  safetensors_file file = safetensors_file::open(fixtures + "/all_dtypes.safetensors");
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  python_tensors values;
  expect_same_tensors(values.all(), file);

  // Spot-check values through the element types, not only bytes.
  const st_tensor_view& f32 = file.tensor("f32");
  std::vector<float> got(6);
  std::memcpy(got.data(), f32.data, f32.size_bytes);
  EXPECT_EQ(got, values.f32);
  EXPECT_EQ(f32.shape, (std::vector<std::int64_t>{2, 3}));
  std::int64_t big = 0;
  std::memcpy(&big, file.tensor("i64").data + 8, 8);
  EXPECT_EQ(big, (std::int64_t{1} << 62) + 1);
  EXPECT_EQ(file.tensor("bool").dtype, st_dtype::boolean);
  EXPECT_EQ(file.tensor("empty").shape, (std::vector<std::int64_t>{0, 4}));
}

TEST(safetensors, writes_the_same_bytes_as_the_python_library) {
  temp_dir dir;
  python_tensors values;
  write_safetensors(dir / "ours.safetensors", values.all(), {{"format", "pt"}});
  std::string ours = read_bytes(dir / "ours.safetensors");
  std::string python = read_bytes(fixtures + "/all_dtypes.safetensors");
  ASSERT_FALSE(python.empty());
  EXPECT_EQ(ours.size(), python.size());
  EXPECT_TRUE(ours == python) << "ours:   " << ours.substr(8, 200) << "\npython: " << python.substr(8, 200);
}

TEST(safetensors, reads_a_sharded_checkpoint_written_by_huggingface_hub) {
  safetensors_checkpoint ckpt = safetensors_checkpoint::open_dir(fixtures + "/sharded");
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"lm_head.bias", "model.embed.weight", "model.layer.weight"}));
  EXPECT_NE(ckpt.file_of("model.embed.weight").find("model-00001-of-00002.safetensors"), std::string::npos);
  EXPECT_NE(ckpt.file_of("lm_head.bias").find("model-00002-of-00002.safetensors"), std::string::npos);

  const st_tensor_view& embed = ckpt.tensor("model.embed.weight");
  EXPECT_EQ(embed.shape, (std::vector<std::int64_t>{4, 6}));
  std::vector<float> got(24);
  std::memcpy(got.data(), embed.data, embed.size_bytes);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(got[i], static_cast<float>(i));
  const st_tensor_view& bias = ckpt.tensor("lm_head.bias");
  float last = 0;
  std::memcpy(&last, bias.data + 7 * 4, 4);
  EXPECT_EQ(last, 7.5f);
  const st_tensor_view& layer = ckpt.tensor("model.layer.weight");
  float third = 1;
  std::memcpy(&third, layer.data + 3 * 4, 4);
  EXPECT_EQ(third, -3.0f);
}

// ---------------------------------------------------------------- checkpoints

TEST(safetensors, writes_a_sharded_checkpoint_that_open_dir_reads_back) {
  temp_dir dir;
  std::vector<std::vector<float>> data;
  for (int i = 0; i < 5; ++i) data.push_back(std::vector<float>(10, static_cast<float>(i)));
  std::vector<st_tensor_out> tensors;
  for (int i = 0; i < 5; ++i)
    tensors.push_back(out_of("layer." + std::to_string(i) + ".weight", st_dtype::f32, {2, 5}, data[i]));
  // 40 bytes each, 100 per shard: shards of 2, 2 and 1.
  write_safetensors_checkpoint(dir / "ckpt", tensors, 100);

  EXPECT_EQ(files_in(dir / "ckpt"),
            (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                      "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  std::string index = read_bytes(dir / "ckpt/model.safetensors.index.json");
  expect_mentions(index, {"\"total_size\": 200", "\"weight_map\"",
                          "\"layer.4.weight\": \"model-00003-of-00003.safetensors\""});

  safetensors_checkpoint ckpt = safetensors_checkpoint::open_dir(dir / "ckpt");
  EXPECT_EQ(ckpt.names().size(), 5u);
  for (const auto& t : tensors) {
    SCOPED_TRACE(t.name);
    ASSERT_TRUE(ckpt.contains(t.name));
    EXPECT_EQ(view_bytes(ckpt.tensor(t.name)), std::string(static_cast<const char*>(t.data), t.size_bytes));
  }
  EXPECT_NE(ckpt.file_of("layer.2.weight").find("model-00002-of-00003"), std::string::npos);
  safetensors_file shard = safetensors_file::open(dir / "ckpt/model-00001-of-00003.safetensors");
  EXPECT_EQ(shard.metadata().at("format"), "pt");
  expect_mentions(input_error_of([&] { ckpt.tensor("nope"); }), {"ckpt", "'nope'"});
}

TEST(safetensors, writes_one_file_when_everything_fits_in_a_shard) {
  temp_dir dir;
  std::vector<float> a(4, 1.0f);
  std::vector<std::int64_t> b = {1, 2};
  write_safetensors_checkpoint(dir / "ckpt", {out_of("a", st_dtype::f32, {4}, a), out_of("b", st_dtype::i64, {2}, b)});
  EXPECT_EQ(files_in(dir / "ckpt"), std::vector<std::string>{"model.safetensors"});
  safetensors_checkpoint ckpt = safetensors_checkpoint::open_dir(dir / "ckpt");
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ckpt.file_of("b"), (dir / "ckpt") + "/model.safetensors");
}

TEST(safetensors, rewriting_a_checkpoint_in_the_other_layout_removes_the_stale_top_file) {
  temp_dir dir;
  std::vector<float> a(4, 1.0f);
  std::vector<float> b(4, 2.0f);
  std::vector<st_tensor_out> tensors = {out_of("a", st_dtype::f32, {4}, a), out_of("b", st_dtype::f32, {4}, b)};
  write_safetensors_checkpoint(dir / "ckpt", tensors);
  write_safetensors_checkpoint(dir / "ckpt", tensors, 16);
  EXPECT_FALSE(exists(dir / "ckpt/model.safetensors"));
  EXPECT_EQ(safetensors_checkpoint::open_dir(dir / "ckpt").file_of("b"),
            (dir / "ckpt") + "/model-00002-of-00002.safetensors");
  write_safetensors_checkpoint(dir / "ckpt", tensors);
  EXPECT_FALSE(exists(dir / "ckpt/model.safetensors.index.json"));
  EXPECT_EQ(safetensors_checkpoint::open_dir(dir / "ckpt").file_of("b"), (dir / "ckpt") + "/model.safetensors");
}

TEST(safetensors, open_dir_rejects_a_directory_without_a_checkpoint) {
  temp_dir dir;
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir / "missing"); }), {dir / "missing"});
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {dir.path().string(), "model.safetensors"});
}

// Writes a valid two-shard checkpoint into `dir`, then replaces its index with `index`.
void sharded_with_index(const temp_dir& dir, const std::string& index) {
  static const std::vector<float> a(4, 1.0f);
  static const std::vector<float> b(4, 2.0f);
  write_safetensors_checkpoint(dir.path().string(), {out_of("a", st_dtype::f32, {4}, a), out_of("b", st_dtype::f32, {4}, b)},
                               16);
  write_bytes(dir / "model.safetensors.index.json", index);
}

TEST(safetensors, open_dir_rejects_a_malformed_index) {
  temp_dir dir;
  sharded_with_index(dir, R"({"weight_map": {"a": "model-00001-of-00002.safetensors",)");
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model.safetensors.index.json", "JSON"});
  sharded_with_index(dir, R"(["a"])");
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model.safetensors.index.json", "object"});
  sharded_with_index(dir, R"({"weight_map": {"a": 3}})");
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model.safetensors.index.json", "'a'", "string"});
}

TEST(safetensors, open_dir_rejects_an_index_without_a_weight_map) {
  temp_dir dir;
  sharded_with_index(dir, R"({"metadata": {"total_size": 32}})");
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model.safetensors.index.json", "weight_map"});
  sharded_with_index(dir, R"({"weight_map": ["a"]})");
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model.safetensors.index.json", "weight_map"});
}

TEST(safetensors, open_dir_rejects_a_missing_shard) {
  temp_dir dir;
  sharded_with_index(dir, R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                             "b": "model-00002-of-00002.safetensors"}})");
  ::unlink((dir / "model-00002-of-00002.safetensors").c_str());
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model.safetensors.index.json", "'b'", "model-00002-of-00002.safetensors", "missing"});
}

TEST(safetensors, open_dir_rejects_a_tensor_absent_from_its_shard) {
  temp_dir dir;
  sharded_with_index(dir, R"({"weight_map": {"a": "model-00001-of-00002.safetensors",
                                             "b": "model-00001-of-00002.safetensors"}})");
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model.safetensors.index.json", "'b'", "model-00001-of-00002.safetensors"});
}

TEST(safetensors, open_dir_rejects_shard_paths_that_leave_the_directory) {
  temp_dir dir;
  for (const std::string shard : {"../model-00001-of-00002.safetensors", "..", "sub/x.safetensors",
                                  "/etc/passwd", "", "."}) {
    SCOPED_TRACE(shard);
    sharded_with_index(dir, R"({"weight_map": {"a": ")" + shard + R"("}})");
    expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                    {"model.safetensors.index.json", "'a'", "plain file name"});
  }
}

TEST(safetensors, open_dir_reports_a_corrupt_shard_by_its_path) {
  temp_dir dir;
  sharded_with_index(dir, R"({"weight_map": {"a": "model-00001-of-00002.safetensors"}})");
  write_bytes(dir / "model-00001-of-00002.safetensors", "junk");
  expect_mentions(input_error_of([&] { safetensors_checkpoint::open_dir(dir.path().string()); }),
                  {"model-00001-of-00002.safetensors", "8"});
}

// ---------------------------------------------------------------- bad files

TEST(safetensors, rejects_a_file_shorter_than_8_bytes) {
  for (std::size_t size : {0, 1, 7}) {
    std::string text = input_error_of([&] { parse(std::string(size, '\0')); });
    expect_mentions(text, {"bad.safetensors", "8"});
  }
}

TEST(safetensors, rejects_header_length_past_end_of_file) {
  std::string content = file_with(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x");
  content[0] = static_cast<char>(content[0] + 2);
  expect_mentions(input_error_of([&] { parse(content); }), {"bad.safetensors", "header length", "past the end"});
  // So large that 8 + N wraps around 64 bits.
  std::string huge = std::string(8, '\xff') + "{}";
  expect_mentions(input_error_of([&] { parse(huge); }), {"bad.safetensors", "header length"});
}

TEST(safetensors, rejects_a_header_over_100_mb) {
  std::string content = file_with("{}");
  const std::uint64_t n = 100'000'001;
  for (int i = 0; i < 8; ++i) content[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  expect_mentions(input_error_of([&] { parse(content); }), {"bad.safetensors", "100000001", "limit"});
}

TEST(safetensors, rejects_a_header_that_is_not_json) {
  expect_rejected(R"({"a":{"dtype":"U8",)", "", {"not valid JSON"});
  expect_rejected("{\"a\xff\":1}", "", {"not valid JSON"});
  expect_rejected("{} trailing", "", {"not valid JSON"});
}

TEST(safetensors, rejects_a_header_that_is_not_an_object) {
  expect_rejected(R"([1, 2])", "", {"object", "array"});
  expect_rejected(R"("text")", "", {"object", "string"});
}

TEST(safetensors, rejects_an_entry_that_is_not_an_object) {
  expect_rejected(R"({"w":[1,2]})", "", {"tensor 'w'", "object"});
}

TEST(safetensors, rejects_missing_or_wrong_typed_dtype_shape_or_data_offsets) {
  expect_rejected(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd", {"tensor 'w'", "missing \"dtype\""});
  expect_rejected(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "abcd", {"tensor 'w'", "\"dtype\""});
  expect_rejected(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "abcd", {"tensor 'w'", "missing \"shape\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", "abcd", {"tensor 'w'", "\"shape\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "abcd", {"tensor 'w'", "\"shape\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", "abcd", {"tensor 'w'", "\"shape\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd", {"tensor 'w'", "missing \"data_offsets\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "abcd", {"tensor 'w'", "\"data_offsets\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", "abcd",
                  {"tensor 'w'", "\"data_offsets\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":{"b":0}}})", "abcd",
                  {"tensor 'w'", "\"data_offsets\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", "abcd",
                  {"tensor 'w'", "\"data_offsets\""});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}})", "abcd",
                  {"tensor 'w'", "\"data_offsets\""});
}

TEST(safetensors, rejects_an_unknown_dtype) {
  expect_rejected(R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "a",
                  {"tensor 'w'", "unknown dtype 'F8_E4M3'"});
  expect_rejected(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", "abcd",
                  {"tensor 'w'", "unknown dtype 'f32'"});
}

TEST(safetensors, rejects_negative_shape_dimensions) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", "", {"tensor 'w'", "-1"});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})", std::string(16, 'x'),
                  {"tensor 'w'", "-2"});
}

TEST(safetensors, rejects_data_offsets_that_begin_after_they_end) {
  expect_rejected(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "abcd", {"tensor 'w'", "[4, 0)"});
}

TEST(safetensors, rejects_data_offsets_past_the_end_of_the_data_buffer) {
  expect_rejected(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd",
                  {"tensor 'w'", "[0, 8)", "4-byte data buffer"});
  expect_rejected(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[5,5]}})", "abcd", {"tensor 'w'", "[5, 5)"});
}

TEST(safetensors, rejects_a_truncated_file_naming_the_tensor) {
  temp_dir dir;
  std::vector<float> a(4, 1.0f);
  std::vector<double> b(4, 2.0);
  write_safetensors(dir / "model.safetensors", {out_of("a", st_dtype::f32, {4}, a), out_of("b", st_dtype::f64, {4}, b)});
  std::string content = read_bytes(dir / "model.safetensors");
  write_bytes(dir / "model.safetensors", content.substr(0, content.size() - 1));
  std::string text = input_error_of([&] { safetensors_file::open(dir / "model.safetensors"); });
  expect_mentions(text, {dir / "model.safetensors", "tensor 'a'", "truncated"});
}

TEST(safetensors, rejects_a_byte_size_that_does_not_match_dtype_and_shape) {
  expect_rejected(R"({"lm_head.weight":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", std::string(16, 'x'),
                  {"tensor 'lm_head.weight'", "data_offsets [0, 12) hold 12 bytes but F32 [2, 2] needs 16"});
  expect_rejected(R"({"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,3]}})", "abc", {"tensor 'w'", "needs 6"});
}

TEST(safetensors, rejects_a_shape_whose_byte_size_overflows_64_bits) {
  // 2^32 x 2^32 elements: the element count wraps to 0 in 64 bits.
  expect_rejected(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", "",
                  {"tensor 'w'", "64 bits"});
  // 2^62 F32 elements: the element count fits, the byte count does not.
  expect_rejected(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", "",
                  {"tensor 'w'", "64 bits"});
  expect_rejected(R"({"w":{"dtype":"F32","shape":[9223372036854775808],"data_offsets":[0,0]}})", "",
                  {"tensor 'w'", "\"shape\""});
}

TEST(safetensors, rejects_overlapping_tensors) {
  expect_rejected(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  std::string(12, 'x'), {"'a' [0, 8)", "'b' [4, 12)", "overlap"});
  // Identical ranges, and one tensor inside another.
  expect_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})",
                  "abcd", {"'a'", "'b'", "overlap"});
  expect_rejected(R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                  R"("c":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                  std::string(8, 'x'), {"'a'", "'b'", "overlap"});
  // Empty tensors overlap nothing; a gap is allowed.
  safetensors_file ok = parse(file_with(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                        R"("e":{"dtype":"U8","shape":[0],"data_offsets":[1,1]},)"
                                        R"("b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}})",
                                        "abcd"));
  EXPECT_EQ(ok.names(), (std::vector<std::string>{"a", "e", "b"}));
}

TEST(safetensors, rejects_non_string_metadata_values) {
  expect_rejected(R"({"__metadata__":{"format":"pt","total_size":12}})", "", {"__metadata__", "'total_size'", "string"});
  expect_rejected(R"({"__metadata__":["pt"]})", "", {"__metadata__", "object"});
}

TEST(safetensors, rejects_a_tensor_named_twice) {
  expect_rejected(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                  R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                  "ab", {"tensor 'w'", "twice"});
}

TEST(safetensors, open_names_the_path_of_a_bad_file) {
  temp_dir dir;
  write_bytes(dir / "model.safetensors", file_with(R"({"w":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", "a"));
  expect_mentions(input_error_of([&] { safetensors_file::open(dir / "model.safetensors"); }),
                  {dir / "model.safetensors", "tensor 'w'", "Q4"});
  expect_mentions(input_error_of([&] { safetensors_file::open(dir / "absent.safetensors"); }),
                  {dir / "absent.safetensors"});
  expect_mentions(input_error_of([&] { safetensors_file::open(dir.path().string()); }), {dir.path().string()});
}

// ---------------------------------------------------------------- writing

TEST(safetensors, write_rejects_a_size_that_does_not_match_the_shape) {
  temp_dir dir;
  std::vector<float> v(3);
  st_tensor_out t = out_of("w", st_dtype::f32, {2, 2}, v);
  expect_mentions(input_error_of([&] { write_safetensors(dir / "x.safetensors", {t}); }), {"'w'", "12", "16"});
  t.shape = {-3};
  expect_mentions(input_error_of([&] { write_safetensors(dir / "x.safetensors", {t}); }), {"'w'", "-3"});
  t.shape = {3};
  t.data = nullptr;
  expect_mentions(input_error_of([&] { write_safetensors(dir / "x.safetensors", {t}); }), {"'w'", "null"});
  EXPECT_TRUE(files_in(dir.path().string()).empty());
}

TEST(safetensors, write_rejects_duplicate_reserved_and_non_utf8_names) {
  temp_dir dir;
  std::vector<float> v(1);
  auto t = out_of("w", st_dtype::f32, {1}, v);
  expect_mentions(input_error_of([&] { write_safetensors(dir / "x.safetensors", {t, t}); }), {"'w'", "twice"});
  t.name = "__metadata__";
  expect_mentions(input_error_of([&] { write_safetensors(dir / "x.safetensors", {t}); }), {"__metadata__"});
  t.name = "bad\xff";
  expect_mentions(input_error_of([&] { write_safetensors(dir / "x.safetensors", {t}); }), {"UTF-8"});
  t.name = "w";
  expect_mentions(input_error_of([&] { write_safetensors(dir / "x.safetensors", {t}, {{"k", "\xc3"}}); }),
                  {"'k'", "UTF-8"});
  expect_mentions(input_error_of([&] { write_safetensors_checkpoint(dir / "ckpt", {t, t}); }), {"'w'", "twice"});
  EXPECT_TRUE(files_in(dir.path().string()).empty());
}

TEST(safetensors, write_into_a_missing_directory_fails_without_leaving_a_file) {
  temp_dir dir;
  std::vector<float> v(1);
  EXPECT_THROW(write_safetensors(dir / "missing/x.safetensors", {out_of("w", st_dtype::f32, {1}, v)}), system_error);
  EXPECT_TRUE(files_in(dir.path().string()).empty());
}

TEST(safetensors, a_failed_rename_leaves_no_temporary_file) {
  temp_dir dir;
  ::mkdir((dir / "x.safetensors").c_str(), 0755);  // rename() cannot replace a directory by a file
  std::vector<float> v(1);
  try {
    write_safetensors(dir / "x.safetensors", {out_of("w", st_dtype::f32, {1}, v)});
    ADD_FAILURE() << "did not throw";
  } catch (const system_error& e) {
    expect_mentions(e.what(), {dir / "x.safetensors"});
  }
  EXPECT_EQ(files_in(dir.path().string()), std::vector<std::string>{"x.safetensors"});
  EXPECT_TRUE(is_directory(dir / "x.safetensors"));
}

TEST(safetensors, a_write_that_fails_midway_keeps_the_old_file_and_leaves_no_temporary) {
  temp_dir dir;
  std::vector<float> old_data(2, 1.0f);
  write_safetensors(dir / "x.safetensors", {out_of("old", st_dtype::f32, {2}, old_data)});
  const std::string before = read_bytes(dir / "x.safetensors");

  // Files may not grow past 4 KiB while writing 64 KiB: write() fails with EFBIG.
  std::vector<float> big(16384, 3.0f);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto saved_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  bool threw = false;
  try {
    write_safetensors(dir / "x.safetensors", {out_of("big", st_dtype::f32, {16384}, big)});
  } catch (const system_error&) {
    threw = true;
  }
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, saved_handler);

  EXPECT_TRUE(threw);
  EXPECT_EQ(files_in(dir.path().string()), std::vector<std::string>{"x.safetensors"});
  EXPECT_EQ(read_bytes(dir / "x.safetensors"), before);
}

}  // namespace
}  // namespace troupe
