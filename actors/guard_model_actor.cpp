#include "actors/guard_model_actor.hpp"

#include <caf/all.hpp>

#include <stdexcept>

#include "actors/protocol/atoms.hpp"
#include "actors/protocol/errors.hpp"
#include "actors/protocol/message_types.hpp"

namespace troupe {

namespace {

caf::behavior guard_model_actor(caf::event_based_actor* self, std::shared_ptr<logprob_scorer> scorer,
                                std::shared_ptr<guard_model> guard) {
  convert_exceptions(self);
  // A failed call is that call's error, not the actor's end: the rail applies its
  // on_failure, and the next call may well succeed.
  auto guarded = [](auto&& call) -> caf::result<decltype(call())> {
    try {
      return call();
    } catch (...) {
      return from_exception(std::current_exception());
    }
  };
  return {
    [scorer, guarded](logprobs_atom, const std::string& text) -> caf::result<std::vector<double>> {
      if (!scorer) return make_error(errc::bad_input, "guard model: no logprob scorer");
      return guarded([&] { return scorer->token_logprobs(text); });
    },
    [guard, guarded](answer_atom, const std::string& prompt) -> caf::result<std::string> {
      if (!guard) return make_error(errc::bad_input, "guard model: no model to answer");
      return guarded([&] { return guard->answer(prompt); });
    },
  };
}

// The rails' scorer and guard model, as requests to the guard-model actor. The rails
// call from threads of their own (model_rails.cpp), so each call is a blocking request
// through a scoped actor of its own.
class actor_model_client final : public logprob_scorer, public guard_model {
 public:
  actor_model_client(caf::actor_system& sys, caf::actor model, std::chrono::milliseconds wait)
      : sys_(sys), model_(std::move(model)), wait_(wait) {}

  std::vector<double> token_logprobs(const std::string& text) override {
    return ask<std::vector<double>>(logprobs_atom::value, text);
  }
  std::string answer(const std::string& prompt) override { return ask<std::string>(answer_atom::value, prompt); }

 private:
  template <class T, class... Ts>
  T ask(Ts&&... xs) {
    if (!model_) throw std::runtime_error("no guard model");
    caf::scoped_actor self{sys_};
    T out{};
    caf::error err;
    self->request(model_, wait_, std::forward<Ts>(xs)...)
      .receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { err = std::move(e); });
    if (err) throw std::runtime_error(render(err));
    return out;
  }

  caf::actor_system& sys_;
  caf::actor model_;
  std::chrono::milliseconds wait_;
};

}  // namespace

caf::actor spawn_guard_model_actor(caf::actor_system& sys, std::shared_ptr<logprob_scorer> scorer,
                                   std::shared_ptr<guard_model> guard) {
  return sys.spawn<caf::detached>(guard_model_actor, std::move(scorer), std::move(guard));
}

rail_services guard_model_services(caf::actor_system& sys, const caf::actor& model, std::chrono::milliseconds wait) {
  auto client = std::make_shared<actor_model_client>(sys, model, wait);
  return {client, client};
}

}  // namespace troupe
