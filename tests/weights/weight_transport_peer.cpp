// A receiving rank for weight_transport_test.cpp, as a process of its own:
//   weight_transport_peer PORT raw|fp8|misfit[-strided][-single] BUCKET_BYTES ROUNDS OUT_FILE
// Joins a 2-rank gloo_weight_transport as rank 1, receives ROUNDS updates into zeroed
// tensors and writes "version name hash" per tensor to OUT_FILE. "misfit" receives into
// tensors of another shape; "-strided" makes two of the receiver's tensors
// non-contiguous views (the staging path); "-single" receives single-buffered. Exit 0, or 3 for input_error, 1 otherwise.
#include <fstream>
#include <iostream>

#include "core/error.hpp"
#include "tests/weights/weight_transport_fixture.hpp"

int main(int argc, char** argv) {
  using namespace troupe;
  if (argc != 6) {
    std::cerr << "usage: weight_transport_peer PORT raw|fp8|misfit[-strided][-single] BUCKET_BYTES ROUNDS OUT_FILE\n";
    return 1;
  }
  const std::string mode = argv[2];
  try {
    gloo_transport_options o;
    o.port = std::stoi(argv[1]);
    o.rank = 1;
    o.world_size = 2;
    o.timeout_s = 30;
    o.bucket_bytes = std::stoll(argv[3]);
    if (mode.rfind("fp8", 0) == 0) o.fp8 = fp8_weights_config{};
    o.double_buffer = mode.find("-single") == std::string::npos;
    gloo_weight_transport transport(o);
    auto weights = testing::transport_weights(0);
    if (mode == "misfit") weights["model.norm.weight"] = torch::zeros({65});
    if (mode.find("-strided") != std::string::npos) {
      weights["model.layers.0.self_attn.q_proj.weight"] = torch::zeros({260, 300}).t();
      weights["model.embed_tokens.weight"] = torch::zeros({64, 320}, torch::kBFloat16).t();
    }
    std::ofstream out(argv[5]);
    for (int r = 0; r < std::stoi(argv[4]); ++r) {
      const auto version = transport.receive(weights);
      for (const auto& w : weights) out << version << " " << w.key() << " " << testing::bytes_hash(w.value()) << "\n";
      out << "wire_bytes " << transport.last_wire_bytes() << "\n";
    }
    return 0;
  } catch (const input_error& e) {
    std::cerr << "peer: " << e.what() << "\n";
    return 3;
  } catch (const std::exception& e) {
    std::cerr << "peer: " << e.what() << "\n";
    return 1;
  }
}
