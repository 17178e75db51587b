#include "core/stop.hpp"

#include <atomic>
#include <csignal>

namespace troupe {

namespace {
std::atomic<bool> stop_flag{false};

extern "C" void on_stop_signal(int sig) {
  stop_flag.store(true);
  // The next Ctrl-C is not caught: a user who presses it twice means "now".
  std::signal(sig, SIG_DFL);
}
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

bool stop_requested() { return stop_flag.load(); }
void request_stop() { stop_flag.store(true); }
void clear_stop() { stop_flag.store(false); }

}  // namespace troupe
