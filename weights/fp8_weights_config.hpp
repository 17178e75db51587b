// Which tensors of a weights map the FP8 codec quantizes, and how (DESIGN.md "Weight
// sync and FP8"), without torch: the `troupe` binary reads and prints it. The codec is
// fp8_codec.hpp; the weights-map wrapper is fp8_weights.hpp.
#pragma once

#include <fnmatch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/config_binding.hpp"
#include "weights/fp8_codec.hpp"

namespace troupe {

struct fp8_weights_config {
  // "block": one scale per block_size x block_size block (DeepSeek-V3's layout);
  // "tensor": one scale per tensor (cheaper, less accurate where values vary in size).
  std::string scaling = "block";
  std::int64_t block_size = 128;
  // A tensor is quantized when it is 2-D and floating, its name matches one of
  // `quantize` and none of `keep`. Patterns are shell globs over the whole name ('*'
  // matches any run of characters, dots included; fnmatch without flags).
  std::vector<std::string> quantize = {"*"};
  // The defaults keep embeddings, norms, the output head and biases in their own
  // precision: they are small, and the head and embeddings are where FP8 errors hurt
  // most (DeepSeek-V3 keeps the same set in higher precision).
  std::vector<std::string> keep = {"*embed*", "*lm_head*", "*norm*", "*.bias"};

  template <class V>
  void describe(V& v) {
    v.field("scaling", scaling, "block: one scale per block_size x block_size block; tensor: one per tensor",
            one_of{"block", "tensor"});
    v.field("block_size", block_size, "rows and columns of a scaling block", at_least<std::int64_t>(1));
    v.field("quantize", quantize, "globs of tensor names to quantize (2-D floating tensors only)");
    v.field("keep", keep, "globs of tensor names kept in their own precision; wins over quantize");
  }

  // The checks of describe() for a config built in code: throws input_error naming
  // `path` for an unknown scaling or a block_size below 1.
  void validate(const std::string& path = "fp8") const {
    if (scaling != "block" && scaling != "tensor")
      throw input_error(path + ".scaling: expected block or tensor, got '" + scaling + "'");
    if (block_size < 1) throw input_error(path + ".block_size: must be at least 1, got " + std::to_string(block_size));
  }

  fp8_scaling scaling_mode() const { return scaling == "tensor" ? fp8_scaling::tensor : fp8_scaling::block; }

  // Whether a tensor named `name` with `dim` dimensions (floating) is quantized.
  bool selects(const std::string& name, std::int64_t dim) const {
    if (dim != 2) return false;
    auto matches = [&name](const std::vector<std::string>& globs) {
      for (const auto& g : globs)
        if (::fnmatch(g.c_str(), name.c_str(), 0) == 0) return true;
      return false;
    };
    return matches(quantize) && !matches(keep);
  }
};

}  // namespace troupe
