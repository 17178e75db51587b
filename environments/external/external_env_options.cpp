// external_env_options::parse: binding, the endpoint and CURVE policy, key files.
#include <zmq.h>

#include <fstream>
#include <sstream>

#include "core/config_tree.hpp"
#include "core/error.hpp"
#include "core/net.hpp"
#include "environments/external/external_env.hpp"
#include "environments/options.hpp"

namespace troupe {

namespace {

struct endpoint_parts {
  std::string scheme, host;  // host is empty for ipc:// and inproc://
  bool local = false;        // loopback, ipc or inproc: plain traffic never leaves the machine
};

endpoint_parts parse_endpoint(const std::string& e) {
  const std::string key = "env.options.endpoint: ";
  const auto sep = e.find("://");
  if (sep == std::string::npos) throw input_error(key + "'" + e + "' is not a ZeroMQ endpoint (tcp://host:port, ipc://path)");
  endpoint_parts p;
  p.scheme = e.substr(0, sep);
  const std::string rest = e.substr(sep + 3);
  if (p.scheme == "ipc" || p.scheme == "inproc") {
    if (rest.empty()) throw input_error(key + "'" + e + "' names no path");
    p.local = true;
    return p;
  }
  if (p.scheme != "tcp") throw input_error(key + "transport '" + p.scheme + "' is not supported (tcp, ipc, inproc)");
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) throw input_error(key + "'" + e + "' needs host:port");
  p.host = rest.substr(0, colon);
  const std::string port = rest.substr(colon + 1);
  const bool digits = !port.empty() && port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535)
    throw input_error(key + "'" + e + "': port '" + port + "' is not in 1-65535");
  if (p.host == "*") throw input_error(key + "'" + e + "': '*' is for servers binding; name the server's host");
  p.local = is_loopback_host(p.host);
  return p;
}

std::string trimmed(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(s.find_last_not_of(ws) + 1);
  s.erase(0, s.find_first_not_of(ws));
  return s;
}

// A key file holds the Z85 key alone, or a ZeroMQ certificate (ZPL text with
// `public-key = "..."` and `secret-key = "..."`), from which `entry` is taken.
std::string read_key_file(const std::string& option, const std::string& path, const char* entry) {
  std::ifstream in(path);
  if (!in) throw input_error("env.options." + option + ": cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string line;
  while (std::getline(ss, line)) {
    line = trimmed(line);
    if (line.rfind(entry, 0) != 0) continue;  // a certificate's `public-key = "..."` line
    const auto open = line.find('"'), close = open == std::string::npos ? open : line.find('"', open + 1);
    if (close == std::string::npos)
      throw input_error("env.options." + option + ": '" + path + "' has a " + entry + " line without a quoted key");
    return line.substr(open + 1, close - open - 1);
  }
  return trimmed(ss.str());  // no certificate: the key alone
}

void check_key(const std::string& option, const std::string& key) {
  std::uint8_t raw[32];
  if (key.size() != 40 || zmq_z85_decode(raw, key.c_str()) == nullptr)
    throw input_error("env.options." + option + ": not a CURVE key (40 characters of Z85, as zmq_curve_keypair writes)");
}

}  // namespace

external_env_options external_env_options::parse(const environment_options& o) {
  // Bind through the config reader, so unknown keys and bad numbers get the same errors
  // (with suggestions) as any other config key.
  config_node node;
  node.type = config_node::kind::mapping;
  node.where = {"environment 'external'", 0};
  for (const auto& [k, v] : o) {
    if (is_task_source_option(k)) continue;  // the task source's, not the bridge's
    config_node leaf;
    leaf.type = config_node::kind::scalar;
    leaf.scalar = v;
    leaf.where = node.where;
    node.entries.emplace_back(k, std::move(leaf));
  }
  external_env_options out;
  config_reader::read_value(node, "env.options", out);

  if (out.env.empty()) throw input_error("env.options.env: name the environment on the server (e.g. env: arithmetic)");
  const auto ep = parse_endpoint(out.endpoint);
  auto load = [](const char* option, std::string& key, const std::string& file, const char* entry) {
    if (!file.empty()) {
      if (!key.empty()) throw input_error(std::string("env.options.") + option + ": give the key or its file, not both");
      key = read_key_file(std::string(option) + "_file", file, entry);
    }
    if (!key.empty()) check_key(option, key);
  };
  load("curve_server_key", out.curve_server_key, out.curve_server_key_file, "public-key");
  load("curve_public_key", out.curve_public_key, out.curve_public_key_file, "public-key");
  load("curve_secret_key", out.curve_secret_key, out.curve_secret_key_file, "secret-key");
  if (out.curve_public_key.empty() != out.curve_secret_key.empty())
    throw input_error("env.options.curve_public_key: give this client's public and secret keys together, or neither");
  const bool curve = !out.curve_server_key.empty();
  if (!curve && !out.curve_public_key.empty())
    throw input_error("env.options.curve_server_key: client keys are set but not the server's public key");
  if (curve && !zmq_has("curve"))
    throw input_error("env.options.curve_server_key: this libzmq was built without CURVE support");
  if (!ep.local && !curve && !out.insecure_remote)
    throw input_error("env.options.endpoint: '" + out.endpoint +
                      "' is not on this machine, and traffic to it would be plain text; set curve_server_key "
                      "(docs/environments-external.md), or insecure_remote: \"true\" on a trusted network");
  return out;
}

}  // namespace troupe
