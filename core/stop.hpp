// Ctrl-C handling for long runs: the first SIGINT or SIGTERM asks the run to stop at its
// next safe point (the experiment checks stop_requested() between steps, saves and
// exits cleanly); a second SIGINT ends the process the default way.
#pragma once

namespace troupe {

void install_stop_handlers();
bool stop_requested();
void request_stop();    // what the handler does; also for tests
void clear_stop();      // tests only

}  // namespace troupe
