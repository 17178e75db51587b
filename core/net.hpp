// Small socket facts the actors need.
#pragma once

#include <string>

namespace troupe {

// A TCP port nobody listens on at `host` (an IPv4 address or a host name) right now:
// the kernel's pick for a socket bound to port 0, released again. For rendezvous points
// whose port must be known before the listener exists (a c10d TCPStore); another
// process could take it in between, which on a run's own machine is rare and makes the
// rendezvous fail, not hang. Throws system_error when no socket can be bound there.
int free_tcp_port(const std::string& host = "127.0.0.1");

}  // namespace troupe
