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

// Whether traffic to `host` never leaves the machine: every address it resolves to
// (getaddrinfo, IPv4 and IPv6) is loopback (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
// An address literal is judged as written, a name by what it resolves to now, and a
// name that does not resolve is not loopback. "[::1]" (brackets) is accepted. This is
// the one place troupe decides "local": it lets a listener or a peer go without TLS or
// CURVE, so a look at the text (e.g. a "127." prefix, which "127.evil.example" has)
// would not do.
bool is_loopback_host(const std::string& host);

}  // namespace troupe
