// libFuzzer target: bytes as the files of a Hugging Face model directory and of the
// offline datasets, the parsers troupe runs on what users download or write:
//   0  config.json                      (parse_model_config)
//   1  tokenizer_config.json            (load_tokenizer_dir, find_chat_format), next to
//                                        a valid tokenizer.json
//   2  model.safetensors.index.json     (safetensors_checkpoint::open_dir), next to a
//                                        valid shard
//   3  an SFT JSONL file                (read_sft_jsonl)
//   4  a preference (DPO) JSONL file    (read_preference_jsonl)
//   5  a cluster: section               (read_config<cluster_section>, parse_host_port)
// The first byte picks the parser, the rest is the file. Each may only throw
// input_error. Built and run by scripts/fuzz.sh model_files.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "actors/cluster_config.hpp"
#include "core/config_binding.hpp"
#include "core/config_tree.hpp"
#include "core/error.hpp"
#include "environments/datasets.hpp"
#include "policies/model_config.hpp"
#include "policies/safetensors.hpp"
#include "policies/tokenizers/chat_template.hpp"
#include "policies/tokenizers/tokenizer.hpp"

namespace {

namespace fs = std::filesystem;

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// A scratch model directory of this process, with the valid neighbours the cases need:
// a small tokenizer.json and a one-tensor shard.
const fs::path& scratch() {
  static const fs::path dir = [] {
    // mkdtemp's name has the same length in every run: the paths end up in error
    // messages, and a fixed-seed run (ctest) should take the same branches each time.
    std::string name = (fs::temp_directory_path() / "troupe-fuzz-model-files-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) std::abort();
    const fs::path d = name;
    std::ifstream tok("tests/fixtures/tokenizers/gpt2/tokenizer.json", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(tok)), std::istreambuf_iterator<char>());
    if (text.empty()) std::abort();  // run from the repository root (scripts/fuzz.sh does)
    write(d / "tokenizer.json", text);
    // One f32 tensor "w" of shape [1]: an 8-byte header length, the JSON header, 4 bytes.
    const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
    std::string shard(8, '\0');
    for (int i = 0; i < 8; ++i) shard[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    shard += header + std::string(4, '\0');
    write(d / "shard-1.safetensors", shard);
    return d;
  }();
  // Removed when the fuzzer exits (libFuzzer ends with exit(), which runs this).
  static const struct remover {
    ~remover() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup;
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const fs::path& dir = scratch();
  try {
    switch (data[0] % 6) {
      case 0:
        (void)troupe::parse_model_config(text, "config.json");
        break;
      case 1:
        write(dir / "tokenizer_config.json", text);
        (void)troupe::load_tokenizer_dir(dir.string());
        (void)troupe::find_chat_format(dir.string());
        break;
      case 2: {
        write(dir / "model.safetensors.index.json", text);
        auto ckpt = troupe::safetensors_checkpoint::open_dir(dir.string());
        (void)ckpt.names();
        break;
      }
      case 3:
        write(dir / "data.jsonl", text);
        (void)troupe::read_sft_jsonl((dir / "data.jsonl").string());
        break;
      case 4:
        write(dir / "data.jsonl", text);
        (void)troupe::read_preference_jsonl((dir / "data.jsonl").string());
        break;
      case 5: {
        const auto tree = troupe::parse_config_text(text, "cluster.yaml");
        const auto c = troupe::read_config<troupe::cluster_section>(tree);
        (void)troupe::parse_host_port(c.listen, "cluster.listen", true);
        for (const auto& w : c.workers) (void)troupe::check_worker_name(w.name);
        break;
      }
    }
  } catch (const troupe::input_error&) {
  }
  return 0;
}
