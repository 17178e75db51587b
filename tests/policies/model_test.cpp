// The causal LM against Hugging Face transformers (fixtures made by
// tests/fixtures/make_hf_fixtures.py), and the generation engine's contracts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "policies/checkpoint.hpp"
#include "policies/generation.hpp"
#include "policies/safetensors.hpp"
#include "policies/tokenizers/tokenizer.hpp"
#include "tests/support/hf_reference.hpp"
#include "tests/support/temp_dir.hpp"

namespace troupe {
namespace {

const std::string fixtures = std::string(TROUPE_SOURCE_DIR) + "/tests/fixtures/hf/";

using reference = testing::hf_reference;

// Largest |a - b| over the positions where mask (B, T) is 1.
double max_diff_where(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  return (a - b).abs().index({mask.to(torch::kBool)}).max().item<double>();
}

class hf_parity : public ::testing::TestWithParam<std::string> {};

TEST_P(hf_parity, logits_match_transformers_within_1e_4_on_a_padded_batch) {
  const auto dir = fixtures + GetParam();
  auto model = load_pretrained(dir);
  reference ref(dir);
  torch::NoGradGuard g;
  auto logits = model->forward(ref["input_ids"], ref["attention_mask"]);
  EXPECT_LT(max_diff_where(logits, ref["logits"], ref["attention_mask"]), 1e-4);
}

TEST_P(hf_parity, greedy_tokens_equal_transformers_generate) {
  const auto dir = fixtures + GetParam();
  generation_engine engine(load_pretrained(dir), nullptr);
  reference ref(dir);
  std::vector<generation_request> batch;
  for (int i = 0; i < 3; ++i) {
    generation_request r;
    r.prompt = ref.ids("prompt_" + std::to_string(i));
    r.params.max_new_tokens = 12;
    r.params.temperature = 0.0;
    batch.push_back(r);
  }
  auto out = engine.generate(batch);  // all three in one left-padded batch
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(out[static_cast<std::size_t>(i)].tokens, ref.ids("greedy_" + std::to_string(i))) << "prompt " << i;
    auto want = ref["greedy_logprobs_" + std::to_string(i)];
    for (std::size_t t = 0; t < out[static_cast<std::size_t>(i)].logprobs.size(); ++t)
      EXPECT_NEAR(out[static_cast<std::size_t>(i)].logprobs[t], want[static_cast<std::int64_t>(t)].item<float>(), 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(models, hf_parity, ::testing::Values("llama", "qwen2", "mistral", "llama_bf16"));

TEST(checkpoint, bf16_weights_load_as_bf16_and_stay_close_to_fp32) {
  const auto dir = fixtures + "llama_bf16";
  load_options o;
  o.dtype = torch::kBFloat16;
  auto model = load_pretrained(dir, o);
  EXPECT_EQ(model->dtype(), torch::kBFloat16);
  reference ref(dir);
  torch::NoGradGuard g;
  auto logits = model->forward(ref["input_ids"], ref["attention_mask"]).to(torch::kFloat32);
  EXPECT_LT(max_diff_where(logits, ref["logits"], ref["attention_mask"]), 0.15);  // bf16 activations
}

TEST(checkpoint, save_then_load_round_trips_every_tensor_and_keeps_tied_embeddings_single) {
  testing::temp_dir dir;
  auto model = load_pretrained(fixtures + "qwen2");
  save_pretrained(model, dir / "out");
  auto file = safetensors_file::open(dir / "out/model.safetensors");
  EXPECT_FALSE(file.contains("lm_head.weight")) << "tied embeddings are stored once, as transformers does";
  auto back = load_pretrained(dir / "out");
  auto a = model->named_parameters(), b = back->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  EXPECT_EQ(read_model_config(dir / "out/config.json").architecture, "Qwen2ForCausalLM");
}

TEST(checkpoint, sharded_save_writes_an_index_that_loads) {
  testing::temp_dir dir;
  auto model = load_pretrained(fixtures + "mistral");
  save_pretrained(model, dir / "out", torch::kFloat32, /*max_shard_bytes=*/150000);
  EXPECT_TRUE(std::filesystem::exists(dir / "out/model.safetensors.index.json"));
  auto back = load_pretrained(dir / "out");
  reference ref(fixtures + "mistral");
  torch::NoGradGuard g;
  EXPECT_LT(max_diff_where(back->forward(ref["input_ids"], ref["attention_mask"]), ref["logits"], ref["attention_mask"]),
            1e-4);
}

// Copies a fixture, then lets `edit` break it; returns load_pretrained's error text.
std::string load_error(const std::string& fixture, const std::function<void(const std::string&)>& edit) {
  testing::temp_dir dir;
  const auto d = dir / "m";
  std::filesystem::copy(fixtures + fixture, d, std::filesystem::copy_options::recursive);
  edit(d);
  try {
    load_pretrained(d);
  } catch (const input_error& e) {
    return e.what();
  }
  return "no error";
}

void replace_in_file(const std::string& path, const std::string& from, const std::string& to) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  auto at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  std::ofstream(path) << s;
}

// Rewrites model.safetensors of `dir` through `change` (which edits the tensor list).
void rewrite_weights(const std::string& dir, const std::function<void(std::vector<st_tensor_out>&)>& change) {
  auto file = safetensors_file::open(dir + "/model.safetensors");
  std::vector<std::vector<std::byte>> bytes;
  std::vector<st_tensor_out> out;
  for (const auto& name : file.names()) {
    const auto& v = file.tensor(name);
    bytes.emplace_back(v.data, v.data + v.size_bytes);
    out.push_back({name, v.dtype, v.shape, nullptr, v.size_bytes});
  }
  for (std::size_t i = 0; i < out.size(); ++i) out[i].data = bytes[i].data();
  change(out);
  write_safetensors(dir + "/model.safetensors.new", out);
  std::filesystem::rename(dir + "/model.safetensors.new", dir + "/model.safetensors");
}

TEST(checkpoint, bad_checkpoints_name_the_file_and_the_tensor_or_key) {
  auto err = load_error("llama", [](const std::string& d) {
    rewrite_weights(d, [](auto& ts) {
      ts.erase(std::remove_if(ts.begin(), ts.end(), [](auto& t) { return t.name == "model.norm.weight"; }), ts.end());
    });
  });
  EXPECT_NE(err.find("missing tensor 'model.norm.weight'"), std::string::npos) << err;

  err = load_error("llama", [](const std::string& d) { replace_in_file(d + "/config.json", "\"hidden_size\": 64", "\"hidden_size\": 32"); });
  EXPECT_NE(err.find("model.safetensors: tensor 'model.embed_tokens.weight': shape [320, 64] disagrees with config.json"),
            std::string::npos)
    << err;

  err = load_error("llama", [](const std::string& d) {
    rewrite_weights(d, [](auto& ts) {
      for (auto& t : ts)
        if (t.name == "model.norm.weight") t.dtype = st_dtype::i32;  // same byte size as F32
    });
  });
  EXPECT_NE(err.find("tensor 'model.norm.weight': dtype I32 is not a floating weight type"), std::string::npos) << err;

  err = load_error("llama", [](const std::string& d) {
    replace_in_file(d + "/config.json", "\"LlamaForCausalLM\"", "\"GPTNeoXForCausalLM\"");
  });
  EXPECT_NE(err.find("config.json: architectures: unknown architecture 'GPTNeoXForCausalLM'"), std::string::npos) << err;

  err = load_error("llama", [](const std::string& d) { replace_in_file(d + "/config.json", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"); });
  EXPECT_NE(err.find("config.json: num_key_value_heads: 3 does not divide num_attention_heads 4"), std::string::npos) << err;

  err = load_error("llama", [](const std::string& d) { replace_in_file(d + "/config.json", "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\""); });
  EXPECT_NE(err.find("unsupported rope type 'yarn'"), std::string::npos) << err;

  err = load_error("llama", [](const std::string& d) { replace_in_file(d + "/config.json", "{", "{{"); });
  EXPECT_NE(err.find("config.json: invalid JSON"), std::string::npos) << err;
  err = load_error("llama", [](const std::string& d) { replace_in_file(d + "/config.json", "{", "{\"x\": 1e999, "); });
  EXPECT_NE(err.find("config.json: invalid JSON: [json.exception.out_of_range.406] number overflow"), std::string::npos) << err;

  err = load_error("llama", [](const std::string& d) {
    rewrite_weights(d, [](auto& ts) { ts.push_back({"model.extra.weight", st_dtype::f32, {1}, ts[0].data, 4}); });
  });
  EXPECT_NE(err.find("unexpected tensor 'model.extra.weight'"), std::string::npos) << err;
}

// --- generation engine -------------------------------------------------------------

generation_request sampled(std::vector<token_id> prompt, std::uint64_t seed, std::int64_t n = 10) {
  generation_request r;
  r.prompt = std::move(prompt);
  r.seed = seed;
  r.params.max_new_tokens = n;
  r.params.temperature = 0.9;
  r.params.top_p = 0.95;
  r.params.top_k = 50;
  return r;
}

TEST(generation, kv_cache_gives_the_same_tokens_and_logprobs_as_recomputing) {
  auto model = load_pretrained(fixtures + "llama");
  generation_engine cached(model, nullptr);
  generation_options no_cache_opts;
  no_cache_opts.use_cache = false;
  generation_engine recompute(model, nullptr, no_cache_opts);
  std::vector<generation_request> batch = {sampled({5, 6, 7}, 1), sampled({9, 10, 11, 12, 13, 14}, 2), sampled({3}, 3)};
  auto a = cached.generate(batch);
  auto b = recompute.generate(batch);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens);
    ASSERT_EQ(a[i].logprobs.size(), b[i].logprobs.size());
    for (std::size_t t = 0; t < a[i].logprobs.size(); ++t) EXPECT_NEAR(a[i].logprobs[t], b[i].logprobs[t], 1e-5);
  }
}

TEST(generation, logprobs_equal_scoring_logprobs_within_1e_5_in_fp32) {
  auto model = load_pretrained(fixtures + "qwen2");
  generation_engine engine(model, nullptr);
  std::vector<generation_request> batch = {sampled({5, 6, 7}, 11), sampled({1, 2, 3, 4, 5, 6, 7, 8}, 12)};
  for (auto& r : batch) r.params.temperature = 0.7;
  auto out = engine.generate(batch);
  std::vector<score_request> scores;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    score_request s;
    s.tokens = batch[i].prompt;
    s.tokens.insert(s.tokens.end(), out[i].tokens.begin(), out[i].tokens.end());
    s.response_start = static_cast<std::int64_t>(batch[i].prompt.size());
    scores.push_back(s);
  }
  auto lps = score_logprobs(model, scores, /*temperature=*/0.7);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(out[i].logprobs_from, logprob_source::model);
    ASSERT_EQ(lps[i].size(), out[i].logprobs.size());
    for (std::size_t t = 0; t < lps[i].size(); ++t) EXPECT_NEAR(lps[i][t], out[i].logprobs[t], 1e-5) << i << ":" << t;
  }
}

TEST(generation, a_seeded_request_gives_the_same_tokens_whatever_else_is_in_the_batch) {
  generation_engine engine(load_pretrained(fixtures + "mistral"), nullptr);
  auto alone = engine.generate({sampled({4, 8, 15}, 42, 16)});
  auto crowded = engine.generate({sampled({16, 23, 42, 7, 7, 7, 1}, 1, 5), sampled({4, 8, 15}, 42, 16), sampled({99}, 7, 16)});
  EXPECT_EQ(alone[0].tokens, crowded[1].tokens);
  auto other_seed = engine.generate({sampled({4, 8, 15}, 43, 16)});
  EXPECT_NE(alone[0].tokens, other_seed[0].tokens) << "the seed matters";
}

TEST(generation, top_k_1_is_greedy_and_sampling_logprobs_are_of_the_filtered_distribution) {
  auto model = load_pretrained(fixtures + "llama");
  reference ref(fixtures + "llama");
  generation_options o;
  o.logprobs = logprob_source::sampling;
  generation_engine engine(model, nullptr, o);
  auto r = sampled(ref.ids("prompt_0"), 5, 12);
  r.params.top_k = 1;
  auto out = engine.generate({r});
  EXPECT_EQ(out[0].tokens, ref.ids("greedy_0"));
  EXPECT_EQ(out[0].logprobs_from, logprob_source::sampling);
  for (float lp : out[0].logprobs) EXPECT_NEAR(lp, 0.0f, 1e-6) << "one candidate left: probability 1";
}

TEST(generation, stops_at_stop_tokens_and_at_max_new_tokens) {
  generation_engine engine(load_pretrained(fixtures + "llama"), nullptr);
  reference ref(fixtures + "llama");
  auto greedy = ref.ids("greedy_1");
  generation_request r;
  r.prompt = ref.ids("prompt_1");
  r.params.temperature = 0;
  r.params.max_new_tokens = 12;
  r.params.stop_token_ids = {greedy[3]};
  auto out = engine.generate({r});
  EXPECT_EQ(out[0].finish, finish_reason::stop_token);
  auto first = std::find(greedy.begin(), greedy.end(), greedy[3]) - greedy.begin();
  EXPECT_EQ(out[0].tokens.size(), static_cast<std::size_t>(first + 1)) << "the stop token is kept";
  r.params.stop_token_ids.clear();
  r.params.max_new_tokens = 4;
  out = engine.generate({r});
  EXPECT_EQ(out[0].finish, finish_reason::length);
  EXPECT_EQ(out[0].tokens.size(), 4u);
}

TEST(generation, stop_strings_end_generation_once_the_text_contains_them) {
  const auto dir = fixtures + "llama";
  auto tok = load_tokenizer_dir(dir);
  generation_engine engine(load_pretrained(dir), tok.get());
  reference ref(dir);
  generation_request r;
  r.prompt = ref.ids("prompt_2");
  r.params.temperature = 0;
  r.params.max_new_tokens = 12;
  auto full = engine.generate({r})[0];
  ASSERT_GE(full.text.size(), 4u);
  r.params.stop_strings = {full.text.substr(1, 2)};
  auto out = engine.generate({r})[0];
  EXPECT_EQ(out.finish, finish_reason::stop_string);
  EXPECT_NE(out.text.find(r.params.stop_strings[0]), std::string::npos);
  EXPECT_LT(out.tokens.size(), full.tokens.size());
}

TEST(generation, bad_requests_are_input_errors) {
  generation_engine engine(load_pretrained(fixtures + "llama"), nullptr);
  auto bad = [&](const std::function<void(generation_request&)>& f) {
    generation_request r;
    r.prompt = {1, 2};
    f(r);
    EXPECT_THROW(engine.generate({r}), input_error);
  };
  bad([](auto& r) { r.prompt.clear(); });
  bad([](auto& r) { r.prompt = {320}; });
  bad([](auto& r) { r.params.max_new_tokens = 300; });
  bad([](auto& r) { r.params.top_p = 0; });
  bad([](auto& r) { r.params.temperature = -1; });
  bad([](auto& r) { r.params.stop_strings = {"x"}; });  // no tokenizer
}

// --- small models from troupe config ----------------------------------------------

TEST(small_model, is_built_from_the_policy_section_and_seeded) {
  policy_section p;
  p.hidden_size = 32;
  p.intermediate_size = 64;
  p.num_attention_heads = 4;
  p.num_key_value_heads = 2;
  auto cfg = small_model_config(p, 40);
  causal_lm a(cfg), b(cfg);
  a->init_weights(7);
  b->init_weights(7);
  for (const auto& x : a->named_parameters()) EXPECT_TRUE(torch::equal(x.value(), b->named_parameters()[x.key()])) << x.key();
  EXPECT_FALSE(a->named_parameters().contains("lm_head.weight")) << "tied by default";
  auto ids = torch::randint(0, 40, {2, 9});
  auto logits = a->forward(ids, torch::ones({2, 9}, torch::kInt64));
  EXPECT_EQ(logits.sizes(), (std::vector<std::int64_t>{2, 9, 40}));
  p.num_attention_heads = 3;
  EXPECT_THROW(small_model_config(p, 40), input_error);
}

}  // namespace
}  // namespace troupe

namespace troupe {
namespace {

// --- CUDA (skipped without a GPU) ------------------------------------------------------

TEST(cuda, model_on_cuda_matches_transformers_in_fp32_and_stays_close_in_bf16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto dir = fixtures + "llama";
  reference ref(dir);
  auto ids = ref["input_ids"].cuda(), mask = ref["attention_mask"].cuda();
  torch::NoGradGuard g;
  load_options o;
  o.device = torch::kCUDA;
  auto fp32 = load_pretrained(dir, o);
  // TF32 matmuls would cost precision; the fp32 path must be true fp32.
  at::globalContext().setAllowTF32CuBLAS(false);
  EXPECT_LT(max_diff_where(fp32->forward(ids, mask).cpu(), ref["logits"], ref["attention_mask"]), 1e-4);
  o.dtype = torch::kBFloat16;
  auto bf16 = load_pretrained(dir, o);
  EXPECT_LT(max_diff_where(bf16->forward(ids, mask).to(torch::kFloat32).cpu(), ref["logits"], ref["attention_mask"]), 0.15);
}

TEST(cuda, greedy_generation_on_cuda_equals_transformers) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  const auto dir = fixtures + "qwen2";
  load_options o;
  o.device = torch::kCUDA;
  generation_engine engine(load_pretrained(dir, o), nullptr);
  reference ref(dir);
  generation_request r;
  r.prompt = ref.ids("prompt_2");
  r.params.temperature = 0;
  r.params.max_new_tokens = 12;
  EXPECT_EQ(engine.generate({r})[0].tokens, ref.ids("greedy_2"));
}

}  // namespace
}  // namespace troupe
