// BPE encode throughput, one thread, on three inputs: ordinary text (Python source) as
// one string, the same text a line at a time (short strings, as prompts are), and the
// pre-tokenizer's slow paths (a long run without spaces, a long whitespace run).
// bench/tokenizer_side_by_side.sh runs it beside Hugging Face `tokenizers` on the same
// tokenizer.json and the same text, and prints the ratios (docs/BENCHMARKS.md).
//   build/bench/tokenizer_bench --dir tests/fixtures/tokenizers/llama3 --text FILE [--mb 2]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "policies/tokenizers/tokenizer.hpp"

namespace {

struct encode_figure {
  double mb_per_s = 0;
  std::size_t ids = 0;
};

// Each piece encoded on its own; best of three, the least disturbed pass on a shared
// machine.
encode_figure time_encode(const troupe::tokenizer& tok, const std::vector<std::string>& pieces) {
  std::size_t bytes = 0;
  for (const auto& p : pieces) bytes += p.size();
  encode_figure best;
  for (int pass = 0; pass < 3; ++pass) {
    std::size_t ids = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const auto& p : pieces) ids += tok.encode(p).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double mb_per_s = static_cast<double>(bytes) / 1e6 / s;
    if (mb_per_s > best.mb_per_s) best = {mb_per_s, ids};
  }
  return best;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    const auto stop = end == std::string::npos ? text.size() : end + 1;
    lines.push_back(text.substr(start, stop - start));
    start = stop;
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, text_file;
  double mb = 2;
  if (argc % 2 == 0) {
    std::fprintf(stderr, "tokenizer_bench: %s needs a value\n", argv[argc - 1]);
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--dir") dir = argv[i + 1];
    else if (flag == "--text") text_file = argv[i + 1];
    else if (flag == "--mb") mb = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "tokenizer_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (dir.empty() || text_file.empty() || mb <= 0) {
    std::fprintf(stderr, "usage: tokenizer_bench --dir TOKENIZER_DIR --text FILE [--mb MB]\n");
    return 2;
  }
  try {
    const auto tok = troupe::load_tokenizer_dir(dir);
    const std::string source = troupe::read_tokenizer_file(text_file);
    std::string text;
    while (static_cast<double>(text.size()) < mb * 1e6) text += source;
    const std::string runs = std::string(500000, 'a') + std::string(500000, ' ') + "x";
    const std::vector<std::pair<const char*, std::vector<std::string>>> cases = {
        {"text", {text}}, {"lines", lines_of(text)}, {"runs", {runs}}};
    for (const auto& [name, pieces] : cases) {
      const auto f = time_encode(*tok, pieces);
      std::printf("troupe %s: %.2f MB/s (%zu ids)\n", name, f.mb_per_s, f.ids);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
}
