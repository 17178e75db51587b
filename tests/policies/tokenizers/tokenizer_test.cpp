// Tokenizers and chat templates. The parity tests compare against ids that Hugging Face
// tokenizers produced for tokenizers trained in the GPT-2, Llama 3 and Qwen2 styles
// (tests/fixtures/make_tokenizer_fixtures.py wrote tests/fixtures/tokenizers/).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include <unistd.h>

#include "core/error.hpp"
#include "tests/support/temp_dir.hpp"
#include "policies/tokenizers/bpe_tokenizer.hpp"
#include "policies/tokenizers/chat_template.hpp"
#include "policies/tokenizers/tokenizer.hpp"
#include "policies/tokenizers/unicode_text.hpp"

namespace troupe {
namespace {

using json = nlohmann::json;

const std::string fixtures = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/tokenizers";
const std::vector<std::string> styles = {"gpt2", "gpt2_prefix", "llama3", "qwen2"};
// Where decode(encode(text)) must give the text back: not gpt2_prefix, whose
// add_prefix_space changes the text on purpose.
const std::vector<std::string> round_trip_styles = {"gpt2", "llama3", "qwen2"};
// The fixtures with a chat template (make_tokenizer_fixtures.py gives the GPT-2 ones none).
const std::vector<std::string> chat_styles = {"llama3", "qwen2"};

json read_json(const std::string& path) {
  return json::parse(read_tokenizer_file(path));
}

std::string describe(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02X", b);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// Runs `fn` and returns the input_error's message; fails if none is thrown.
template <class F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const input_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no input_error was thrown";
  return "";
}

// ---- Parity with Hugging Face -----------------------------------------------------

class tokenizer_parity : public ::testing::TestWithParam<std::string> {};

TEST_P(tokenizer_parity, encodes_every_test_string_to_the_hugging_face_ids) {
  const std::string dir = fixtures + "/" + GetParam();
  const auto tok = load_tokenizer_dir(dir);
  const json expected = read_json(dir + "/expected.json");
  ASSERT_GE(expected["cases"].size(), 40U);
  for (const json& c : expected["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok->encode(text), c["ids"].get<std::vector<token_id>>()) << "text: " << describe(text);
    EXPECT_EQ(tok->encode(text, false), c["ids_no_special"].get<std::vector<token_id>>())
        << "parse_special=false, text: " << describe(text);
  }
}

TEST_P(tokenizer_parity, decodes_like_hugging_face) {
  const std::string dir = fixtures + "/" + GetParam();
  const auto tok = load_tokenizer_dir(dir);
  const json expected = read_json(dir + "/expected.json");
  for (const json& c : expected["cases"]) {
    const auto ids = c["ids"].get<std::vector<token_id>>();
    EXPECT_EQ(tok->decode(ids), c["decoded"].get<std::string>()) << "text: " << describe(c["text"]);
    EXPECT_EQ(tok->decode(ids, true), c["decoded_skip_special"].get<std::string>()) << "text: " << describe(c["text"]);
  }
}

class tokenizer_round_trip : public ::testing::TestWithParam<std::string> {};

TEST_P(tokenizer_round_trip, decode_of_encode_gives_back_the_normalized_text) {
  const std::string dir = fixtures + "/" + GetParam();
  const auto tok = load_tokenizer_dir(dir);
  const bool nfc = GetParam() == "qwen2";
  // Held: a range-for over read_json(...)["cases"] would walk a destroyed temporary.
  const json expected = read_json(dir + "/expected.json");
  for (const json& c : expected["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok->decode(tok->encode(text, false)), nfc ? c["nfc"].get<std::string>() : text)
        << "text: " << describe(text);
  }
}

class chat_template_parity : public ::testing::TestWithParam<std::string> {};

TEST_P(chat_template_parity, formats_chats_exactly_as_the_jinja_template_renders_them) {
  const std::string dir = fixtures + "/" + GetParam();
  const json expected = read_json(dir + "/expected.json");
  ASSERT_FALSE(expected["chats"].empty()) << GetParam() << " is listed in chat_styles but its fixture has no chats";
  const chat_format format = chat_format_from_tokenizer_dir(dir);
  for (const json& chat : expected["chats"]) {
    std::vector<chat_message> messages;
    for (const json& m : chat["messages"]) messages.push_back({m["role"], m["content"]});
    EXPECT_EQ(format_chat(format, messages, chat["add_generation_prompt"]), chat["text"].get<std::string>())
        << chat["messages"].dump();
  }
}

const auto style_name = [](const ::testing::TestParamInfo<std::string>& param) { return param.param; };
INSTANTIATE_TEST_SUITE_P(styles, tokenizer_parity, ::testing::ValuesIn(styles), style_name);
INSTANTIATE_TEST_SUITE_P(styles, tokenizer_round_trip, ::testing::ValuesIn(round_trip_styles), style_name);
INSTANTIATE_TEST_SUITE_P(styles, chat_template_parity, ::testing::ValuesIn(chat_styles), style_name);

// The lists above name every fixture that has what they test, so that nothing is left
// out without a word: a fixture with chats must be in chat_styles.
TEST(tokenizer_parity_lists, name_every_fixture_with_a_chat_template) {
  for (const auto& style : styles) {
    const bool chats = !read_json(fixtures + "/" + style + "/expected.json")["chats"].empty();
    const bool listed = std::find(chat_styles.begin(), chat_styles.end(), style) != chat_styles.end();
    EXPECT_EQ(chats, listed) << style;
  }
}

TEST(tokenizer_dir, reads_special_tokens_from_tokenizer_config) {
  const auto llama = load_tokenizer_dir(fixtures + "/llama3");
  EXPECT_EQ(llama->bos_id(), llama->token_to_id("<|begin_of_text|>"));
  EXPECT_EQ(llama->eos_id(), llama->token_to_id("<|eot_id|>"));  // given as {"content": ...}
  EXPECT_FALSE(llama->pad_id());
  const auto qwen = load_tokenizer_dir(fixtures + "/qwen2");
  EXPECT_FALSE(qwen->bos_id());
  EXPECT_EQ(qwen->eos_id(), qwen->token_to_id("<|im_end|>"));
  EXPECT_EQ(qwen->pad_id(), qwen->token_to_id("<|endoftext|>"));
  EXPECT_TRUE(qwen->is_special(*qwen->eos_id()));
  EXPECT_FALSE(qwen->is_special(*qwen->token_to_id("<tool_call>")));
  EXPECT_EQ(chat_format_from_tokenizer_dir(fixtures + "/qwen2"), chat_format::chatml);
  EXPECT_EQ(chat_format_from_tokenizer_dir(fixtures + "/llama3"), chat_format::llama3);
}

using testing::temp_dir;

TEST(tokenizer_dir, falls_back_to_config_json_ids_and_takes_the_first_eos_of_a_list) {
  temp_dir dir;
  dir.write("tokenizer.json", read_tokenizer_file(fixtures + "/llama3/tokenizer.json"));
  dir.write("config.json", R"({"bos_token_id": 0, "eos_token_id": [4, 1]})");
  const auto tok = load_tokenizer_dir(dir.path().string());
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_EQ(tok->eos_id(), 4);
  EXPECT_FALSE(tok->pad_id());
}

TEST(tokenizer_dir, rejects_a_config_token_that_the_tokenizer_lacks) {
  temp_dir dir;
  dir.write("tokenizer.json", read_tokenizer_file(fixtures + "/llama3/tokenizer.json"));
  dir.write("tokenizer_config.json", R"({"eos_token": {"content": "<nope>"}})");
  EXPECT_NE(error_of([&] { load_tokenizer_dir(dir.path().string()); }).find("tokenizer_config.json: eos_token.content: token "
                                                                   "'<nope>' is not in the tokenizer"),
            std::string::npos);
  dir.write("tokenizer_config.json", R"({"eos_token": )");
  EXPECT_NE(error_of([&] { load_tokenizer_dir(dir.path().string()); }).find("tokenizer_config.json: invalid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_tokenizer_dir(dir / "missing"); }).find("no tokenizer.json"), std::string::npos);
}

// ---- Behaviour beyond the fixtures --------------------------------------------------

TEST(bpe_tokenizer, repairs_invalid_utf8_input_and_decodes_partial_bytes_as_replacement_characters) {
  const auto tok = load_tokenizer_dir(fixtures + "/gpt2");
  EXPECT_EQ(tok->decode(tok->encode("a\xC3(b\xFF")), "a\xEF\xBF\xBD(b\xEF\xBF\xBD");
  // The byte token of 0xC3 ("Ã" in GPT-2's byte map) alone is not UTF-8.
  const auto lead = tok->token_to_id("\xC3\x83");
  ASSERT_TRUE(lead);
  EXPECT_EQ(tok->decode({*lead, *tok->token_to_id("a")}), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(tok->decode({999999, -1}), "");  // unknown ids are skipped
  EXPECT_THROW(tok->id_to_token(999999), input_error);
}

TEST(bpe_tokenizer, gives_the_same_ids_from_many_threads_at_once) {
  const auto tok = load_tokenizer_dir(fixtures + "/qwen2");
  const std::string text = read_tokenizer_file(std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/make_tokenizer_fixtures.py");
  const auto expected = tok->encode(text);
  std::vector<std::thread> threads;
  std::vector<bool> same(4);
  for (std::size_t t = 0; t < same.size(); ++t) {
    threads.emplace_back([&, t] { same[t] = tok->encode(text) == expected; });
  }
  for (auto& thread : threads) thread.join();
  for (const bool s : same) EXPECT_TRUE(s);
}

// Long inputs, and the pre-tokenizer's slow paths (a run without spaces, a whitespace
// run), come back whole. Their speed is bench/tokenizer_side_by_side.sh's business.
TEST(bpe_tokenizer, encodes_megabytes_and_long_runs_and_decodes_them_back) {
  const auto tok = load_tokenizer_dir(fixtures + "/llama3");
  const std::string source = read_tokenizer_file(std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/make_tokenizer_fixtures.py");
  std::string text;
  while (text.size() < (2U << 20)) text += source;
  text += std::string(100000, 'a') + std::string(100000, ' ') + "x";
  const auto ids = tok->encode(text);
  EXPECT_LT(ids.size(), text.size() / 2) << "merges apply across the text";
  EXPECT_EQ(tok->decode(ids), text);
}

// A tiny valid tokenizer.json that the error tests break one piece at a time.
json minimal_tokenizer() {
  return json::parse(R"({
    "added_tokens": [{"id": 4, "content": "<s>", "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "abb": 5}, "merges": ["a b", ["ab", "b"]]}
  })");
}

std::string load_error(const json& j) {
  return error_of([&] { load_bpe_tokenizer_from_string(j.dump(), "tokenizer.json"); });
}

TEST(bpe_tokenizer, loads_the_minimal_tokenizer_with_both_merge_formats) {
  const json j = minimal_tokenizer();
  const auto tok = load_bpe_tokenizer_from_string(j.dump(), "tokenizer.json");
  EXPECT_EQ(tok->encode("ab<s>abb a"), (std::vector<token_id>{2, 4, 5, 3, 0}));
  EXPECT_EQ(tok->vocab_size(), 6U);
}

TEST(bpe_tokenizer, names_the_file_and_json_path_of_every_malformed_part) {
  EXPECT_EQ(error_of([] { load_bpe_tokenizer_from_string("{\"model\": ", "tokenizer.json"); }).rfind("tokenizer.json: invalid JSON", 0), 0U);
  const auto expect = [](const json& j, const std::string& message) {
    const std::string error = load_error(j);
    EXPECT_NE(error.find(message), std::string::npos) << "error: " << error << "\nexpected: " << message;
    EXPECT_EQ(error.rfind("tokenizer.json: ", 0), 0U) << error;
  };
  json j = minimal_tokenizer();
  j.erase("model");
  expect(j, "model: missing");
  j = minimal_tokenizer();
  j["model"]["type"] = "WordPiece";
  expect(j, "model.type: 'WordPiece' is unsupported");
  j["model"]["type"] = "Unigram";
  expect(j, "model.type: 'Unigram' is unsupported");
  j = minimal_tokenizer();
  j["model"]["merges"][1] = "x y";
  expect(j, "model.merges[1]: token 'x' is not in the vocab");
  j["model"]["merges"][1] = "ab";
  expect(j, "model.merges[1]: expected two tokens");
  j["model"]["merges"][1] = json::array({"b", "a"});
  expect(j, "model.merges[1]: token 'ba' is not in the vocab");
  j["model"]["merges"][1] = 7;
  expect(j, "model.merges[1]: expected \"a b\"");
  j = minimal_tokenizer();
  j["model"]["vocab"]["c"] = 1;
  expect(j, "model.vocab['c']: id 1 is already used by 'b'");
  j["model"]["vocab"]["c"] = -1;
  expect(j, "model.vocab['c']: id -1 is out of range");
  j["model"]["vocab"]["c"] = 1e12;
  expect(j, "model.vocab['c']: expected an integer id");
  j["model"]["vocab"]["c"] = 4000000000LL;
  expect(j, "model.vocab['c']: id 4000000000 is out of range");
  j["model"]["vocab"]["c"] = 10000000;
  expect(j, "ids leave too many gaps");
  j = minimal_tokenizer();
  j["added_tokens"][0]["id"] = "4";
  expect(j, "added_tokens[0].id: expected an integer id");
  j["added_tokens"][0]["id"] = 1;
  expect(j, "added_tokens[0].id: id 1 is already the vocab's token 'b'");
  j["added_tokens"][0]["id"] = 4;
  j["added_tokens"][0]["content"] = "";
  expect(j, "added_tokens[0].content: an added token cannot be empty");
  j["added_tokens"][0]["content"] = "a";
  expect(j, "added_tokens[0].id: 'a' has id 4 but the vocab gives it 0");
  j = minimal_tokenizer();
  j["added_tokens"].push_back({{"id", 4}, {"content", "<t>"}});
  expect(j, "added_tokens[1].id: id 4 is already used by added_tokens[0]");
  j = minimal_tokenizer();
  j["normalizer"] = {{"type", "NFKC"}};
  expect(j, "normalizer.type: 'NFKC' is unsupported");
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}};
  expect(j, "normalizer.normalizers[1].type: 'Lowercase' is unsupported");
  j = minimal_tokenizer();
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect(j, "pre_tokenizer.type: 'Metaspace' is unsupported");
  j["pre_tokenizer"] = nullptr;
  expect(j, "pre_tokenizer: null is unsupported");
  j["pre_tokenizer"] = json::parse(R"json({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "a(?=b)"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "use_regex": false}]})json");
  expect(j, "pre_tokenizer.pretokenizers[0].pattern: lookaround and atomic groups are unsupported");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "a(b";
  expect(j, "pre_tokenizer.pretokenizers[0].pattern: cannot compile the pattern");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\bx";
  expect(j, "pre_tokenizer.pretokenizers[0].pattern: \\b is unsupported");
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "x";
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithPrevious";
  expect(j, "pre_tokenizer.pretokenizers[0].behavior: 'MergedWithPrevious' is unsupported");
  j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Isolated";
  j["pre_tokenizer"]["pretokenizers"][0]["invert"] = true;
  expect(j, "pre_tokenizer.pretokenizers[0].invert: true is unsupported");
  j["pre_tokenizer"]["pretokenizers"].erase(1);
  j["pre_tokenizer"]["pretokenizers"][0]["invert"] = false;
  expect(j, "pre_tokenizer.pretokenizers: no ByteLevel");
  j = minimal_tokenizer();
  j["decoder"] = {{"type", "WordPiece"}};
  expect(j, "decoder.type: 'WordPiece' is unsupported");
  j = minimal_tokenizer();
  j["model"]["dropout"] = 0.1;
  expect(j, "model.dropout: is unsupported");
  j = minimal_tokenizer();
  j["model"]["unk_token"] = "<unk>";
  expect(j, "model.unk_token: token '<unk>' is not in the vocab");
  expect(json::array(), "(root): expected an object");
}

TEST(split_pattern, removes_the_whitespace_lookahead_tail_and_spells_out_unicode_whitespace) {
  bool tail = false;
  EXPECT_EQ(translate_split_pattern(R"( ?\p{L}+|\s+(?!\S)|\s+)", tail), R"( ?\p{L}+)");
  EXPECT_TRUE(tail);
  EXPECT_EQ(translate_split_pattern(R"([^\s\p{L}]+|\d)", tail),
            R"([^\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\p{L}]+|\p{Nd})");
  EXPECT_FALSE(tail);
  EXPECT_THROW(translate_split_pattern(R"(\s+(?!\S))", tail), input_error);
  EXPECT_THROW(translate_split_pattern(R"([\S])", tail), input_error);
  EXPECT_THROW(translate_split_pattern(R"([a[b]])", tail), input_error);
  EXPECT_THROW(translate_split_pattern(R"(\w+)", tail), input_error);
}

TEST(bpe_tokenizer, splits_whitespace_runs_as_the_gpt2_lookahead_does) {
  // Only single characters in the vocab, so each pre-token's bytes show where it split.
  json j = minimal_tokenizer();
  j["model"]["merges"] = json::array();
  j["model"]["vocab"] = {{"a", 0}, {"Ġ", 1}, {"ĉ", 2}, {"Ċ", 3}};
  j["added_tokens"] = json::array();
  const auto tok = load_bpe_tokenizer_from_string(j.dump(), "tokenizer.json");
  // Pre-tokens: "a" "  " " a" (the run gives up its last space to the word), "\t" "\n".
  EXPECT_EQ(tok->encode("a   a\t\n"), (std::vector<token_id>{0, 1, 1, 1, 0, 2, 3}));
}

// ---- Character tokenizer ------------------------------------------------------------

TEST(char_tokenizer, maps_each_character_to_its_index_and_specials_after_them) {
  const auto tok = make_char_tokenizer("ab\xC3\xA9 ", {"<eos>", "<e>"});
  EXPECT_EQ(tok->vocab_size(), 6U);
  EXPECT_EQ(tok->encode("a\xC3\xA9 b<eos><e>"), (std::vector<token_id>{0, 2, 3, 1, 4, 5}));
  EXPECT_EQ(tok->decode({0, 2, 4, 1}), "a\xC3\xA9<eos>b");
  EXPECT_EQ(tok->decode({0, 2, 4, 1}, true), "a\xC3\xA9" "b");
  EXPECT_TRUE(tok->is_special(4));
  EXPECT_FALSE(tok->is_special(3));
  EXPECT_EQ(tok->token_to_id("<e>"), 5);
  EXPECT_EQ(tok->id_to_token(2), "\xC3\xA9");
}

TEST(char_tokenizer, rejects_characters_outside_the_alphabet_and_duplicates) {
  const auto tok = make_char_tokenizer("ab<", {"<s>"});
  EXPECT_NE(error_of([&] { tok->encode("abc"); }).find("'c' at byte 2 is not in the alphabet"), std::string::npos);
  EXPECT_THROW(tok->encode("<s>", false), input_error);
  EXPECT_THROW(make_char_tokenizer("aba", {}), input_error);
  EXPECT_THROW(make_char_tokenizer("ab", {"a"}), input_error);
}

// ---- Chat formats -------------------------------------------------------------------

TEST(chat_template, formats_chatml_and_llama3_turns) {
  const std::vector<chat_message> chat = {{"system", "S"}, {"user", " hi \n"}};
  EXPECT_EQ(format_chat(chat_format::chatml, chat, true),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n hi \n<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(format_chat(chat_format::llama3, chat, false),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
  EXPECT_EQ(format_chat(chat_format::plain, {{"user", "12+"}, {"assistant", "3"}}, true), "12+3");
}

TEST(chat_template, rejects_unknown_roles_names_and_templates) {
  EXPECT_NE(error_of([] { format_chat(chat_format::chatml, {{"user", "a"}, {"bot", "b"}}, false); })
                .find("chat message 1: role 'bot' is not one of system, user, assistant, tool"),
            std::string::npos);
  EXPECT_NE(error_of([] { chat_format_from_name("mistral"); }).find("supported formats: chatml, llama3, plain"),
            std::string::npos);
  EXPECT_EQ(chat_format_from_name(chat_format_name(chat_format::llama3)), chat_format::llama3);
  const std::string error = error_of([] { detect_chat_format("{{ bos_token }}[INST]", "x/tokenizer_config.json"); });
  EXPECT_EQ(error.rfind("x/tokenizer_config.json: ", 0), 0U);
  EXPECT_NE(error.find("chatml, llama3"), std::string::npos);
}

TEST(unicode_text, white_space_is_exactly_the_set_hugging_face_splits_on) {
  // The characters that Hugging Face's \s matched when checked with tokenizers 0.23.
  const std::vector<char32_t> white = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001,
                                       0x2005, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  for (const char32_t c : white) EXPECT_TRUE(is_unicode_white_space(c)) << std::hex << c;
  for (const char32_t c : {0x08, 0x1C, 0x1F, 0x21, 0x180E, 0x200B, 0x2027, 0x2030, 0xFEFF, 0x3001}) {
    EXPECT_FALSE(is_unicode_white_space(static_cast<char32_t>(c))) << std::hex << c;
  }
}

TEST(unicode_text, composes_canonically_including_reordered_marks_and_hangul) {
  EXPECT_EQ(nfc_normalize("e\xCC\x81"), "\xC3\xA9");                          // e + acute
  EXPECT_EQ(nfc_normalize("a\xCC\xA3\xCC\x82"), "\xE1\xBA\xAD");              // a + dot below + circumflex
  EXPECT_EQ(nfc_normalize("a\xCC\x82\xCC\xA3"), "\xE1\xBA\xAD");              // the other order
  EXPECT_EQ(nfc_normalize("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(nfc_normalize("\xE2\x84\xAB"), "\xC3\x85");                       // Angstrom sign -> Å
  EXPECT_EQ(nfc_normalize("plain ascii"), "plain ascii");
}

}  // namespace
}  // namespace troupe
