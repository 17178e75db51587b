#include "actors/policy/generator_actor.hpp"

#include <caf/all.hpp>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"
#include "weights/weight_snapshot.hpp"
#include "core/error.hpp"
#include "policies/generation.hpp"

namespace troupe {

namespace {

struct generator_state {
  std::unique_ptr<generation_engine> engine;
  std::shared_ptr<const tokenizer> tok;
  std::int64_t version = 0;
  weight_link_factory make_link;
  std::unique_ptr<weight_transport> link;
  static inline const char* name = "troupe.generator";
};

generator_actor::behavior_type generator(generator_actor::stateful_pointer<generator_state> self, causal_lm model,
                        std::shared_ptr<const tokenizer> tok, std::int64_t version, weight_link_factory link) {
  convert_exceptions(self);
  model->eval();
  self->state.tok = tok;
  self->state.engine = std::make_unique<generation_engine>(model, tok.get());
  self->state.version = version;
  self->state.make_link = std::move(link);
  return {
    [self](generate_atom, const std::vector<gen_request>& reqs) {
      std::vector<generation_request> batch;
      batch.reserve(reqs.size());
      for (const auto& r : reqs) {
        generation_request g;
        g.prompt = r.prompt;
        g.seed = r.seed;
        g.params.max_new_tokens = r.max_new_tokens;
        g.params.temperature = r.temperature;
        g.params.top_k = r.top_k;
        g.params.top_p = r.top_p;
        g.params.stop_strings = r.stop_strings;
        batch.push_back(std::move(g));
      }
      auto outs = self->state.engine->generate(batch);
      std::vector<gen_result> results;
      results.reserve(outs.size());
      for (auto& o : outs)
        results.push_back({std::move(o.tokens), std::move(o.logprobs), std::move(o.text), to_string(o.finish),
                           self->state.version});
      return results;
    },
    [self](weights_atom, const weight_update& u) {
      u.weights->load_into(self->state.engine->model());
      self->state.version = u.version;
      return u.version;
    },
    [self](weights_atom, std::int64_t announced) -> caf::result<std::int64_t> {
      auto& st = self->state;
      if (!st.make_link) return make_error(errc::bad_input, "generator: weights announced, but it has no weight link");
      if (!st.link) st.link = st.make_link();
      auto params = st.engine->model()->named_parameters();
      const auto v = st.link->receive(params);
      if (v != announced)
        return make_error(errc::bad_input, "generator: the link brought version " + std::to_string(v) + ", not " +
                                             std::to_string(announced));
      st.version = v;
      return v;
    },
    [self](status_atom) { return self->state.version; },
  };
}

}  // namespace

generator_actor spawn_generator(caf::actor_system& sys, causal_lm model, std::shared_ptr<const tokenizer> tok,
                           std::int64_t version, weight_link_factory link) {
  return sys.spawn<caf::detached>(generator, std::move(model), std::move(tok), version, std::move(link));
}

}  // namespace troupe
