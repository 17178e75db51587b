#include "actors/grpo_policy.hpp"

#include "policies/char_tokenizer.hpp"
#include "policies/checkpoint.hpp"
#include "policies/device.hpp"
#include "policies/model_config.hpp"

namespace troupe {

grpo_policy build_grpo_policy(const experiment_config& cfg) {
  const auto& p = cfg.policy;
  grpo_policy out;
  if (p.path.empty()) {
    // A small model from the config, over the char tokenizer of the task's alphabet.
    auto tok = make_char_tokenizer(cfg.tokenizer.alphabet, {"<pad>", "<bos>", "<eos>"});
    tok->set_special_ids(tok->token_to_id("<bos>"), tok->token_to_id("<eos>"), tok->token_to_id("<pad>"));
    out.tok = std::move(tok);
    auto mcfg = small_model_config(p, static_cast<std::int64_t>(out.tok->vocab_size()));
    mcfg.eos_token_ids = {*out.tok->eos_id()};
    out.policy = causal_lm(mcfg);
    out.policy->init_weights(static_cast<std::uint64_t>(p.init_seed));
    out.policy->to(parse_torch_device(p.device), parse_torch_dtype(p.dtype));
    out.chat = chat_format::plain;
  } else {
    // A Hugging Face model directory: its weights, tokenizer.json and chat format.
    out.tok = std::shared_ptr<const tokenizer>(load_tokenizer_dir(p.path));
    load_options lo;
    lo.dtype = parse_torch_dtype(p.dtype);
    lo.device = parse_torch_device(p.device);
    out.policy = load_pretrained(p.path, lo);
    out.chat = p.chat_format != "auto" ? chat_format_from_name(p.chat_format)
                                       : find_chat_format(p.path).value_or(chat_format::plain);
  }
  // Padding only fills rows up to the batch's length and is masked out: any id does
  // when the tokenizer has no pad token.
  const auto& t = *out.tok;
  out.pad_id = t.pad_id() ? *t.pad_id() : t.eos_id() ? *t.eos_id() : 0;
  return out;
}

trainer_actor_options grpo_trainer_options(const experiment_config& cfg, std::int64_t pad_id) {
  trainer_actor_options to;
  to.trainer = cfg.trainer;
  to.loss = cfg.grpo.loss;
  to.temperature = cfg.grpo.temperature;
  to.pad_id = pad_id;
  to.sft = cfg.trainer;
  to.sft.lr = cfg.sft.lr;
  to.sft.microbatch_size = cfg.sft.microbatch_size;
  to.sft.lr_schedule = "constant";
  to.sft.warmup_steps = 0;
  if (cfg.weight_sync.codec == "fp8") to.fp8_sync = cfg.weight_sync.fp8;
  return to;
}

}  // namespace troupe
