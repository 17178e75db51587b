// The policy an experiment trains, built from the `policy:` and `tokenizer:` sections the
// same way for every experiment (grpo, sft, dpo and distill):
// - policy.path empty: the small model of `policy:` over the char tokenizer of
//   tokenizer.alphabet (ids of the characters, then <pad>, <bos>, <eos>), its initial
//   weights from policy.init_seed; prompts are plain text after <bos>.
// - policy.path a Hugging Face model directory: its config.json and weights, its
//   tokenizer.json (bos / eos / pad from tokenizer_config.json), and the chat format
//   policy.chat_format names; auto takes the directory's chat template, and plain when
//   it has none (a base model).
// Torch side (in the plugin).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "experiments/experiment_config.hpp"
#include "policies/causal_lm.hpp"
#include "policies/tokenizers/chat_template.hpp"
#include "policies/model_config.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace troupe {

struct policy_setup {
  std::shared_ptr<const tokenizer> tok;
  model_config config;      // the model's shape (vocab_size, max_position_embeddings, ...)
  causal_lm model{nullptr};  // empty from load_policy_tokenizer
  chat_format chat = chat_format::plain;
  // Padding only fills rows up to the batch's length and is masked out: the
  // tokenizer's pad id, else its eos id, else 0.
  std::int64_t pad_id = 0;
};

// Checks the `policy:` section before a run exists: a model directory with config.json
// and tokenizer.json, a known chat_format, the small model's shape, dtype and device.
// Throws input_error naming the key.
void validate_policy(const policy_section& p);

// Everything but the weights (for tokenizing data, checking sizes); reads only the
// tokenizer files and config.json of a model directory.
policy_setup load_policy_tokenizer(const experiment_config& cfg);
// The policy with its weights, in policy.dtype on policy.device.
policy_setup load_policy(const experiment_config& cfg);

// One line for the terminal: where the policy comes from, its shape and chat format,
// e.g. "policy: models/qwen (Qwen2ForCausalLM, 24 layers, 896 wide, 151936 ids), chat format chatml".
std::string describe_policy(const policy_section& p, const policy_setup& setup);

// A task's prompt as one user turn in the policy's chat format, ready to generate from;
// plain text (the small char models) gets BOS in front instead, as in pretraining.
std::vector<std::int32_t> encode_prompt(const tokenizer& tok, chat_format chat, const std::string& text);
std::vector<std::int32_t> encode_prompt(const policy_setup& p, const std::string& text);

// Copies the tokenizer files of the model directory `from` (tokenizer.json and, where
// present, tokenizer_config.json and special_tokens_map.json) into `to`, each written
// atomically: a checkpoint of a Hugging Face policy is then a model directory of its own
// (for policy.path, dpo.init_from, distill.teacher, troupe chat). Throws system_error
// naming the file it cannot write.
void copy_tokenizer_files(const std::string& from, const std::string& to);

}  // namespace troupe
