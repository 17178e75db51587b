#include "actors/protocol/errors.hpp"

#include <caf/exit_reason.hpp>
#include <caf/make_message.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/sec.hpp>

#include "core/error.hpp"

namespace troupe {

std::string to_string(errc x) {
  switch (x) {
    case errc::none: return "none";
    case errc::bad_input: return "bad_input";
    case errc::system_failure: return "system_failure";
    case errc::worker_failed: return "worker_failed";
    case errc::timeout: return "timeout";
    case errc::restart_limit: return "restart_limit";
    case errc::stopped: return "stopped";
    case errc::internal: return "internal";
  }
  return "errc(" + std::to_string(static_cast<int>(x)) + ")";
}

caf::error make_error(errc code, std::string context) {
  return caf::error{static_cast<std::uint8_t>(code), errc_category, caf::make_message(std::move(context))};
}

caf::error from_exception(const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const input_error& e) {
    return make_error(errc::bad_input, e.what());
  } catch (const system_error& e) {
    return make_error(errc::system_failure, e.what());
  } catch (const std::exception& e) {
    return make_error(errc::internal, e.what());
  } catch (...) {
    return make_error(errc::internal, "unknown exception");
  }
}

void convert_exceptions(caf::scheduled_actor* self) {
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& ep) { return from_exception(ep); });
}

std::string render(const caf::error& err) {
  if (!err) return "no error";
  std::string out;
  if (err.category() == errc_category) out = "troupe: " + to_string(static_cast<errc>(err.code()));
  else if (err.category() == caf::atom("system")) out = "caf: " + caf::to_string(static_cast<caf::sec>(err.code()));
  else if (err.category() == caf::atom("exit")) out = "exit: " + caf::to_string(static_cast<caf::exit_reason>(err.code()));
  else out = caf::to_string(err.category()) + ": code " + std::to_string(err.code());
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) out += " (" + ctx.get_as<std::string>(0) + ")";
  else if (!ctx.empty()) out += " " + caf::to_string(ctx);
  return out;
}

std::string error_message(const caf::error& err) {
  const auto& ctx = err.context();
  if (err && err.category() == errc_category && ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return render(err);
}

}  // namespace troupe
