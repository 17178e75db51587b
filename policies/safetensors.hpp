// Reading and writing safetensors files, the checkpoint format of Hugging Face
// transformers, without LibTorch: tensors are described by dtype, shape and a view of
// their bytes; policies/checkpoint.hpp turns them into torch tensors.
//
// Format (https://huggingface.co/docs/safetensors): 8 bytes little-endian u64 N, then N
// bytes of JSON header {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
// ..., "__metadata__": {"k": "v"}}, then the data buffer; offsets are relative to the
// start of the buffer, [b, e) per tensor. A sharded checkpoint has
// model.safetensors.index.json: {"metadata": {...}, "weight_map": {"name": "file"}}.
//
// Everything read from disk is validated; every error is an input_error whose text
// names the file and, where there is one, the tensor:
//   "model.safetensors: tensor 'lm_head.weight': data_offsets [0, 12) hold 12 bytes but
//    F32 [2, 2] needs 16"
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace troupe {

enum class st_dtype { f32, f16, bf16, f64, i64, i32, i16, i8, u8, boolean };

// "F32" <-> st_dtype; parse throws input_error for names it does not know.
st_dtype parse_st_dtype(const std::string& name, const std::string& context);
const char* st_dtype_name(st_dtype t);
std::size_t st_dtype_size(st_dtype t);

// One tensor inside a mapped file: its bytes stay valid while the safetensors_file
// that produced it is alive.
struct st_tensor_view {
  std::string name;
  st_dtype dtype = st_dtype::f32;
  std::vector<std::int64_t> shape;
  const std::byte* data = nullptr;  // little-endian, row-major
  std::size_t size_bytes = 0;
};

// A memory-mapped safetensors file with a validated header.
class safetensors_file {
 public:
  // Maps `path` read-only and validates: the header length fits the file, the header
  // is a JSON object of tensor entries (plus optional "__metadata__" of strings), each
  // dtype is known, shape entries are >= 0, data_offsets are within the data buffer,
  // e - b equals dtype size x elements, and no two tensors overlap. Zero-element tensors
  // are legal; so are gaps between tensors. A tensor named twice, and a header over
  // 100 MB (the Rust library's limit), are errors.
  // Throws input_error naming `path` (and the tensor) otherwise; a missing file is an
  // input_error too, other failures to open or map it are system_error.
  // A tensor's data is aligned to its element size only if the writer made it so (the
  // Python library and write_safetensors do); readers of other files should memcpy.
  static safetensors_file open(const std::string& path);

  // Parses and validates a header held in memory (the fuzz target and open() share
  // this): `bytes` is the whole file content. Same checks and errors as open(), with
  // `source_name` in place of the path.
  static safetensors_file from_bytes(std::vector<std::byte> bytes, const std::string& source_name);

  safetensors_file(safetensors_file&&) noexcept;
  safetensors_file& operator=(safetensors_file&&) noexcept;
  ~safetensors_file();

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensor names in the order of their data in the file (for files the Python library
  // wrote, also the header's order).
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const;
  // Throws input_error "<path>: no tensor '<name>'" if missing.
  const st_tensor_view& tensor(const std::string& name) const;

 private:
  safetensors_file() = default;
  struct mapping;
  // Validates the bytes `map` holds and builds the file over them (open, from_bytes).
  static safetensors_file assemble(std::unique_ptr<mapping> map, const std::string& source_name);
  std::unique_ptr<mapping> map_;
  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::vector<std::string> names_;
  std::map<std::string, st_tensor_view> tensors_;
};

// A checkpoint directory: either model.safetensors, or the shards listed by
// model.safetensors.index.json (each shard opened once). Lookup by tensor name.
class safetensors_checkpoint {
 public:
  // When both are present model.safetensors wins, as in transformers. Only the
  // tensors the index's weight_map names are visible.
  // Throws input_error naming the directory or file when neither layout is present,
  // the index is malformed (not JSON, no "weight_map" object, a shard that is not a
  // plain file name inside `dir`), a shard is missing, or a tensor the index names is
  // absent from its shard.
  static safetensors_checkpoint open_dir(const std::string& dir);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const st_tensor_view& tensor(const std::string& name) const;  // input_error if absent
  // The file holding `name` (for error messages).
  const std::string& file_of(const std::string& name) const;

 private:
  std::string dir_;
  std::vector<safetensors_file> files_;
  std::map<std::string, std::size_t> where_;  // tensor -> index into files_
};

// A tensor to write: the bytes are copied from `data` during write.
struct st_tensor_out {
  std::string name;
  st_dtype dtype = st_dtype::f32;
  std::vector<std::int64_t> shape;
  const void* data = nullptr;
  std::size_t size_bytes = 0;  // must equal dtype size x elements
};

// Writes one safetensors file atomically (temporary file in the same directory, fsync,
// rename): byte for byte what the Python library writes for the same tensors and
// metadata: tensors ordered by element size (largest first) then by name, compact
// JSON header padded with spaces so the data starts 8-byte aligned. (Python orders
// metadata keys at random; here they are sorted.) Empty `metadata` writes no
// "__metadata__". Throws input_error for a size/shape mismatch, a negative dimension,
// a duplicate or reserved ("__metadata__") name, or a name that is not UTF-8, before
// touching the disk; system_error for I/O failures, which leave neither a temporary
// file nor a partial one (an existing file at `path` stays as it was).
void write_safetensors(const std::string& path, const std::vector<st_tensor_out>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` into `dir` (created if missing) as model.safetensors, or, when the
// total exceeds `max_shard_bytes`, as model-00001-of-0000N.safetensors shards plus
// model.safetensors.index.json (transformers' naming and index format). Shards are
// filled greedily in the given order, as huggingface_hub does; a tensor larger than
// the limit gets a shard of its own, and if that leaves one shard it is written as
// model.safetensors. Every file carries metadata {"format": "pt"}, which transformers
// checks. The index is written last, then the other layout's top file (a stale
// model.safetensors or index) is removed so that open_dir sees the new checkpoint.
// Each file is replaced atomically, the checkpoint as a whole is not: when readers
// may be looking, write into a fresh directory and rename it.
void write_safetensors_checkpoint(const std::string& dir, const std::vector<st_tensor_out>& tensors,
                                  std::size_t max_shard_bytes = std::size_t{5} << 30);

}  // namespace troupe
