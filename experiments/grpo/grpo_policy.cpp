#include "experiments/grpo/grpo_policy.hpp"


namespace troupe {

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
