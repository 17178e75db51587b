#include "actors/cluster_config.hpp"

#include "core/error.hpp"
#include "core/net.hpp"

namespace troupe {

std::optional<std::string> check_worker_name(const std::string& name) {
  if (name.empty()) return std::string("a worker needs a name");
  if (name.size() > 64) return "'" + name + "' is longer than 64 characters";
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return "'" + name + "' may only use letters, digits, '_', '-' and '.'";
  }
  return std::nullopt;
}

host_port parse_host_port(const std::string& text, const std::string& key, bool allow_port_zero) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw input_error(key + ": '" + text + "' is not HOST:PORT (e.g. 127.0.0.1:7420)");
  host_port out;
  out.host = text.substr(0, colon);
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);  // [::1]:7420
  const std::string port = text.substr(colon + 1);
  const bool digits = !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  const int value = digits ? std::stoi(port) : -1;
  const int lowest = allow_port_zero ? 0 : 1;
  if (value < lowest || value > 65535)
    throw input_error(key + ": '" + text + "': port '" + port + "' is not in " + std::to_string(lowest) + "-65535");
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

void validate(const cluster_section& c) {
  const auto where = parse_host_port(c.listen, "cluster.listen", true);
  for (std::size_t i = 0; i < c.workers.size(); ++i)  // the reader checks names only where given
    if (auto bad = check_worker_name(c.workers[i].name))
      throw input_error("cluster.workers[" + std::to_string(i) + "].name: " + *bad);
  if (c.tls.enabled()) {
    for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"certificate", &c.tls.certificate},
                                     {"key", &c.tls.key},
                                     {"cafile", &c.tls.cafile}})
      if (value->empty())
        throw input_error(std::string("cluster.tls.") + key +
                          ": empty; TLS needs certificate, key and cafile (`troupe cluster certs DIR` makes them)");
  } else if (!is_loopback_host(where.host)) {
    throw input_error("cluster.listen: '" + c.listen +
                      "' is not a loopback address, and workers on other hosts must be authenticated: set "
                      "cluster.tls.certificate, cluster.tls.key and cluster.tls.cafile (`troupe cluster certs DIR` "
                      "makes them), or listen on 127.0.0.1");
  }
  bool data_plane = false;  // weight links (generators) or trainer ranks on workers
  for (const auto& w : c.workers) data_plane = data_plane || w.generators > 0 || w.trainer_ranks > 0;
  if (data_plane && c.data_plane != "insecure-private-network" && !is_loopback_host(where.host))
    throw input_error("cluster.data_plane: the workers' generators and trainer ranks receive weights and gradients "
                      "over c10d (TCPStore, Gloo, NCCL), which neither encrypts nor authenticates, and they would "
                      "listen on '" + where.host + "' (cluster.listen), which is not loopback. Set cluster.data_plane: "
                      "insecure-private-network on a network only you use, or keep those actors in the head");
}

}  // namespace troupe
