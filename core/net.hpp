// Small socket facts the actors need: listeners, port reservations, loopback.
#pragma once

#include <string>

namespace troupe {

// A listening TCP socket (SOCK_CLOEXEC) bound to `host`'s first address (getaddrinfo)
// and `port`; port 0 lets the kernel choose. `who` starts the messages. Throws
// system_error naming host:port when the name does not resolve or the port is taken.
int listen_tcp(const std::string& host, int port, const std::string& who);

// A port for a rendezvous in this process whose port must be known before its server
// exists (a c10d TCPStore, whose address is sent to the peers first): the kernel's pick
// on `host`, already bound and listening, held by this process until
// take_reserved_listener claims it. Nobody else can take the port in between, which
// "find a free port and release it" allowed. Peers that connect early wait in the
// backlog. Throws system_error as listen_tcp does.
int reserve_tcp_port(const std::string& host = "127.0.0.1");

// The listening socket reserve_tcp_port made for `port`, now owned by the caller, or -1
// when this process reserved no such port (or it was claimed already: a server that
// restarts on the same port binds it again itself).
int take_reserved_listener(int port);

// Whether traffic to `host` never leaves the machine: every address it resolves to
// (getaddrinfo, IPv4 and IPv6) is loopback (127.0.0.0/8, ::1, or ::ffff:127.x.y.z).
// An address literal is judged as written, a name by what it resolves to now, and a
// name that does not resolve is not loopback. "[::1]" (brackets) is accepted. This is
// the one place troupe decides "local": it lets a listener or a peer go without TLS or
// CURVE, so a look at the text (e.g. a "127." prefix, which "127.evil.example" has)
// would not do.
bool is_loopback_host(const std::string& host);

}  // namespace troupe
