// libFuzzer target: bytes as the text of a tokenizer.json. Loading must either succeed
// or throw input_error; a loaded tokenizer must encode and decode a fixed string
// without crashing. Built and run by scripts/fuzz.sh tokenizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.hpp"
#include "policies/tokenizers/bpe_tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto tok = troupe::load_bpe_tokenizer_from_string(text, "tokenizer.json");
    const std::string sample = "Hello,  world!\n\t 12345 caf\xC3\xA9 e\xCC\x81 <|im_end|> \xF0\x9F\x98\x80 \xFF end  ";
    const auto ids = tok->encode(sample);
    (void)tok->decode(ids);
    (void)tok->decode(tok->encode(sample, false), true);
    (void)tok->vocab_size();
  } catch (const troupe::input_error&) {
  }
  return 0;
}
