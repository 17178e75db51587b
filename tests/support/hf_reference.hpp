// Reads the reference.safetensors files that tests/fixtures/make_*_fixtures.py write
// beside a Hugging Face checkpoint: tensors PyTorch + transformers computed, by name.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "policies/safetensors.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe::testing {

// A copy of the tensor the view points at (int64 or float32).
inline torch::Tensor to_tensor(const st_tensor_view& v) {
  auto dtype = v.dtype == st_dtype::i64 ? torch::kInt64 : torch::kFloat32;
  return torch::from_blob(const_cast<std::byte*>(v.data), v.shape, dtype).clone();
}

struct hf_reference {
  explicit hf_reference(const std::string& dir) : file(safetensors_file::open(dir + "/reference.safetensors")) {}
  torch::Tensor operator[](const std::string& name) const { return to_tensor(file.tensor(name)); }
  std::vector<token_id> ids(const std::string& name) const {
    auto t = (*this)[name];
    return std::vector<token_id>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
  }
  safetensors_file file;
};

}  // namespace troupe::testing
