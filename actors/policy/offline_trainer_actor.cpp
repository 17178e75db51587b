#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "actors/policy/offline_trainer_actor.hpp"
#include "weights/weight_snapshot.hpp"
#include "policies/checkpoint.hpp"
#include "algorithms/offline_objectives.hpp"

namespace troupe {

namespace {

struct offline_trainer_state {
  std::unique_ptr<trainer> t;
  offline_trainer_options opts;
  static inline const char* name = "troupe.offline_trainer";
};

using offline_trainer_actor = caf::stateful_actor<offline_trainer_state>;

caf::behavior offline_trainer_behavior(offline_trainer_actor* self, causal_lm policy, offline_trainer_options opts) {
  convert_exceptions(self);
  auto& st = self->state;
  st.opts = std::move(opts);
  st.t = std::make_unique<trainer>(std::move(policy), st.opts.trainer, st.opts.objective == offline_objective::dpo);
  return {
    [self](train_atom, const token_rows& rows) {
      auto& s = self->state;
      if (s.opts.objective == offline_objective::dpo) return dpo_step(*s.t, s.opts.dpo, rows, s.opts.pad_id);
      if (s.opts.objective == offline_objective::distill)
        return distill_step(*s.t, s.opts.teacher, s.opts.distill, rows, s.opts.pad_id);
      return sft_step(*s.t, rows, s.opts.pad_id);
    },
    [self](eval_atom, const token_rows& rows) {
      auto& s = self->state;
      if (s.opts.objective == offline_objective::dpo) return dpo_eval(*s.t, s.opts.dpo, rows, s.opts.pad_id);
      if (s.opts.objective == offline_objective::distill)
        return distill_eval(*s.t, s.opts.teacher, s.opts.distill, rows, s.opts.pad_id);
      const auto n = sft_eval(*s.t, rows, s.opts.pad_id);
      return std::map<std::string, double>{{"nll_sum", n.sum}, {"tokens", n.tokens}};
    },
    [self](weights_atom) {
      return publish_weights(self->state.t->policy(), self->state.t->step());
    },
    [self](save_atom, const std::string& dir) {
      self->state.t->save_checkpoint(dir);
      return true;
    },
    [self](load_atom, const std::string& reference_dir, const std::string& dir) {
      auto& t = *self->state.t;
      if (!reference_dir.empty()) {
        if (t.reference() == nullptr)
          throw std::logic_error("offline trainer: a reference to restore from " + reference_dir + ", but no reference");
        load_weights(*t.reference(), reference_dir);
      }
      t.load_checkpoint(dir);
      return t.step();
    },
  };
}

}  // namespace

caf::actor spawn_offline_trainer_actor(caf::actor_system& sys, causal_lm policy, offline_trainer_options opts) {
  opts.trainer.validate("trainer");
  if (opts.objective == offline_objective::dpo) {
    opts.dpo.validate();
    if (opts.trainer.microbatch_size % 2 != 0)
      throw input_error("offline trainer: dpo needs an even microbatch_size (rows), so microbatches hold whole pairs");
  }
  if (opts.objective == offline_objective::distill) {
    if (!opts.teacher) throw std::logic_error("offline trainer: distill needs a teacher");
    opts.distill.validate(opts.teacher->config().vocab_size);
  }
  return sys.spawn<caf::detached>(offline_trainer_behavior, std::move(policy), std::move(opts));
}

}  // namespace troupe
