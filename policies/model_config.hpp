// The shape of a decoder-only causal LM, as a Hugging Face `config.json` describes it.
// Three architectures share one implementation (policies/causal_lm.hpp):
//   LlamaForCausalLM    (Llama 2/3.x, SmolLM)  attention_bias applies to q, k, v and o
//   Qwen2ForCausalLM    (Qwen2, Qwen2.5)       q, k and v always have a bias
//   MistralForCausalLM                          no biases; sliding_window is ignored
//                                                (troupe attends to the full context)
// Both the transformers 4 layout (`rope_theta`, `rope_scaling`, `torch_dtype`) and the
// transformers 5 layout (`rope_parameters`, `dtype`) are read; troupe writes the 5 one
// plus the 4 keys, so either version loads what troupe saves.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config_binding.hpp"

namespace troupe {

struct rope_config {
  double theta = 10000.0;
  std::string type = "default";  // "default" | "llama3"
  // llama3 only:
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  std::int64_t original_max_position_embeddings = 8192;
};

struct model_config {
  std::string architecture = "LlamaForCausalLM";
  std::string model_type = "llama";
  std::int64_t vocab_size = 0;
  std::int64_t hidden_size = 0;
  std::int64_t intermediate_size = 0;
  std::int64_t num_hidden_layers = 0;
  std::int64_t num_attention_heads = 0;
  std::int64_t num_key_value_heads = 0;
  std::int64_t head_dim = 0;  // hidden_size / num_attention_heads unless given
  std::int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  rope_config rope;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // biases on q_proj, k_proj, v_proj
  bool o_bias = false;    // bias on o_proj
  bool mlp_bias = false;
  std::string dtype = "float32";  // the dtype the weights were saved in
  std::optional<std::int64_t> bos_token_id;
  std::vector<std::int64_t> eos_token_ids;
  std::optional<std::int64_t> pad_token_id;
  double initializer_range = 0.02;

  // The embedding row that gets no gradient from lookups, as transformers builds it
  // (nn.Embedding(..., padding_idx=pad_token_id)): pad_token_id when it names a row,
  // nothing otherwise (a pad id outside the vocabulary, or none).
  std::optional<std::int64_t> padding_idx() const;

  // Throws input_error naming `source` and the key when a size is not positive, heads
  // do not divide, or kv heads do not divide heads.
  void validate(const std::string& source) const;
};

// Reads config.json. Throws input_error naming the file and the key for invalid JSON,
// a missing or mistyped key, an unknown architecture or rope type, or an unsupported
// hidden_act (only silu is).
model_config read_model_config(const std::string& path);
model_config parse_model_config(const std::string& json_text, const std::string& source_name);

// The config.json text transformers reads back as the same model.
std::string model_config_to_json(const model_config& c);

// The `policy:` section of an experiment: either a Hugging Face directory to load, or a
// small model built from scratch (for tasks trained from scratch, e.g. char-level).
struct policy_section {
  std::string path;                 // a Hugging Face model directory; empty: build `small`
  std::string dtype = "float32";    // float32 | bfloat16
  std::string device = "cpu";       // cpu | cuda | cuda:N
  std::string architecture = "LlamaForCausalLM";  // for the small model
  std::int64_t hidden_size = 128;
  std::int64_t intermediate_size = 384;
  std::int64_t num_hidden_layers = 2;
  std::int64_t num_attention_heads = 4;
  std::int64_t num_key_value_heads = 2;
  std::int64_t max_position_embeddings = 256;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = true;
  std::int64_t init_seed = 0;       // weights of the small model
  // How task prompts become the policy's input: auto (a Hugging Face policy's
  // tokenizer_config.json chat template; plain for the small model), chatml, llama3, plain.
  std::string chat_format = "auto";

  template <class V>
  void describe(V& v) {
    v.field("path", path, "Hugging Face model directory; empty builds a small model from the keys below");
    v.field("dtype", dtype, "weights and compute dtype", one_of{"float32", "bfloat16"});
    v.field("device", device, "cpu, cuda or cuda:N");
    v.field("architecture", architecture, "small model: architecture",
            one_of{"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"});
    v.field("hidden_size", hidden_size, "small model: width", in_range<std::int64_t>(8, 65536));
    v.field("intermediate_size", intermediate_size, "small model: MLP width", in_range<std::int64_t>(8, 262144));
    v.field("num_hidden_layers", num_hidden_layers, "small model: layers", in_range<std::int64_t>(1, 512));
    v.field("num_attention_heads", num_attention_heads, "small model: query heads", in_range<std::int64_t>(1, 512));
    v.field("num_key_value_heads", num_key_value_heads, "small model: key/value heads (GQA)", in_range<std::int64_t>(1, 512));
    v.field("max_position_embeddings", max_position_embeddings, "small model: context length",
            in_range<std::int64_t>(8, 1 << 20));
    v.field("rope_theta", rope_theta, "small model: RoPE base", greater_than(0.0));
    v.field("tie_word_embeddings", tie_word_embeddings, "small model: share embedding and lm_head");
    v.field("init_seed", init_seed, "small model: seed of the initial weights", at_least<std::int64_t>(0));
    v.field("chat_format", chat_format, "prompt format: auto (from policy.path's chat template) | chatml | llama3 | plain",
            one_of{"auto", "chatml", "llama3", "plain"});
  }
};

// The model_config of the small model `p` describes, for a tokenizer of `vocab_size` ids.
model_config small_model_config(const policy_section& p, std::int64_t vocab_size);

}  // namespace troupe
