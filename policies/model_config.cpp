#include "policies/model_config.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace troupe {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& source, const std::string& key, const std::string& what) {
  throw input_error(source + ": " + key + ": " + what);
}

template <class T>
T get(const json& j, const std::string& key, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) bad(source, key, "required key is missing");
  const json& v = j.at(key);
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) bad(source, key, "expected a string, got " + v.dump());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) bad(source, key, "expected true or false, got " + v.dump());
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) bad(source, key, "expected an integer, got " + v.dump());
  } else {
    if (!v.is_number()) bad(source, key, "expected a number, got " + v.dump());
  }
  return v.get<T>();
}

template <class T>
T get_or(const json& j, const std::string& key, T fallback, const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return get<T>(j, key, source);
}

rope_config read_rope(const json& j, const std::string& source) {
  rope_config r;
  // transformers 5: rope_parameters {rope_type, rope_theta, ...};
  // transformers 4: rope_theta at the top, rope_scaling {rope_type | type, ...} or null.
  const json* params = nullptr;
  std::string where;
  if (j.contains("rope_parameters") && !j.at("rope_parameters").is_null()) {
    params = &j.at("rope_parameters");
    where = "rope_parameters";
  } else if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
    params = &j.at("rope_scaling");
    where = "rope_scaling";
  }
  r.theta = get_or<double>(j, "rope_theta", r.theta, source);
  if (params == nullptr) return r;
  if (!params->is_object()) bad(source, where, "expected an object, got " + params->dump());
  const std::string src = source + ": " + where;
  if (params->contains("rope_theta")) r.theta = get<double>(*params, "rope_theta", src);
  std::string type = params->contains("rope_type") ? get<std::string>(*params, "rope_type", src)
                     : params->contains("type")    ? get<std::string>(*params, "type", src)
                                                   : "default";
  if (type == "default") return r;
  if (type != "llama3")
    bad(source, where + ".rope_type", "unsupported rope type '" + type + "' (troupe supports default and llama3)");
  r.type = type;
  r.factor = get<double>(*params, "factor", src);
  r.low_freq_factor = get<double>(*params, "low_freq_factor", src);
  r.high_freq_factor = get<double>(*params, "high_freq_factor", src);
  r.original_max_position_embeddings = get<std::int64_t>(*params, "original_max_position_embeddings", src);
  if (!(r.high_freq_factor > r.low_freq_factor))
    bad(source, where + ".high_freq_factor", "must be greater than low_freq_factor");
  return r;
}

}  // namespace

std::optional<std::int64_t> model_config::padding_idx() const {
  if (pad_token_id && *pad_token_id >= 0 && *pad_token_id < vocab_size) return pad_token_id;
  return std::nullopt;
}

void model_config::validate(const std::string& source) const {
  auto positive = [&](const char* key, std::int64_t v) {
    if (v <= 0) bad(source, key, "must be > 0, got " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads % num_key_value_heads != 0)
    bad(source, "num_key_value_heads",
        std::to_string(num_key_value_heads) + " does not divide num_attention_heads " +
          std::to_string(num_attention_heads));
  if (head_dim % 2 != 0) bad(source, "head_dim", "must be even for RoPE, got " + std::to_string(head_dim));
  if (!(rms_norm_eps > 0)) bad(source, "rms_norm_eps", "must be > 0");
  if (!(rope.theta > 0)) bad(source, "rope_theta", "must be > 0");
}

model_config parse_model_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double (1e999)
    throw input_error(source + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) throw input_error(source + ": expected a JSON object");

  model_config c;
  c.model_type = get<std::string>(j, "model_type", source);
  if (j.contains("architectures")) {
    const auto& a = j.at("architectures");
    if (!a.is_array() || a.empty() || !a.at(0).is_string())
      bad(source, "architectures", "expected a list with one architecture name");
    c.architecture = a.at(0).get<std::string>();
  } else {
    c.architecture = c.model_type == "qwen2" ? "Qwen2ForCausalLM"
                     : c.model_type == "mistral" ? "MistralForCausalLM"
                                                 : "LlamaForCausalLM";
  }
  static const char* known[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"};
  if (std::find(std::begin(known), std::end(known), c.architecture) == std::end(known))
    bad(source, "architectures",
        "unknown architecture '" + c.architecture +
          "' (troupe supports LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM)");

  c.vocab_size = get<std::int64_t>(j, "vocab_size", source);
  c.hidden_size = get<std::int64_t>(j, "hidden_size", source);
  c.intermediate_size = get<std::int64_t>(j, "intermediate_size", source);
  c.num_hidden_layers = get<std::int64_t>(j, "num_hidden_layers", source);
  c.num_attention_heads = get<std::int64_t>(j, "num_attention_heads", source);
  c.num_key_value_heads = get_or<std::int64_t>(j, "num_key_value_heads", c.num_attention_heads, source);
  c.head_dim = get_or<std::int64_t>(j, "head_dim", c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0,
                                    source);
  c.max_position_embeddings = get_or<std::int64_t>(j, "max_position_embeddings", c.max_position_embeddings, source);
  c.rms_norm_eps = get_or<double>(j, "rms_norm_eps", c.rms_norm_eps, source);
  c.rope = read_rope(j, source);
  c.tie_word_embeddings = get_or<bool>(j, "tie_word_embeddings", false, source);
  c.initializer_range = get_or<double>(j, "initializer_range", c.initializer_range, source);
  const std::string act = get_or<std::string>(j, "hidden_act", "silu", source);
  if (act != "silu") bad(source, "hidden_act", "unsupported activation '" + act + "' (troupe supports silu)");

  if (c.architecture == "Qwen2ForCausalLM") {
    c.qkv_bias = true;  // Qwen2 hard-codes bias=True on q, k, v (not o)
  } else if (c.architecture == "LlamaForCausalLM") {
    c.qkv_bias = c.o_bias = get_or<bool>(j, "attention_bias", false, source);
    c.mlp_bias = get_or<bool>(j, "mlp_bias", false, source);
  }
  c.dtype = get_or<std::string>(j, "dtype", get_or<std::string>(j, "torch_dtype", "float32", source), source);

  if (j.contains("bos_token_id") && !j.at("bos_token_id").is_null())
    c.bos_token_id = get<std::int64_t>(j, "bos_token_id", source);
  if (j.contains("pad_token_id") && !j.at("pad_token_id").is_null())
    c.pad_token_id = get<std::int64_t>(j, "pad_token_id", source);
  if (j.contains("eos_token_id") && !j.at("eos_token_id").is_null()) {
    const auto& e = j.at("eos_token_id");
    if (e.is_number_integer()) c.eos_token_ids.push_back(e.get<std::int64_t>());
    else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer()) bad(source, "eos_token_id", "expected integers, got " + e.dump());
        c.eos_token_ids.push_back(x.get<std::int64_t>());
      }
    } else {
      bad(source, "eos_token_id", "expected an integer or a list, got " + e.dump());
    }
  }
  c.validate(source);
  return c;
}

model_config read_model_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path + ": cannot read (" + errno_text(errno) + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), path);
}

std::string model_config_to_json(const model_config& c) {
  json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.model_type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["initializer_range"] = c.initializer_range;
  if (c.architecture == "LlamaForCausalLM") {
    j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = c.mlp_bias;
  }
  json rope = {{"rope_type", c.rope.type}, {"rope_theta", c.rope.theta}};
  if (c.rope.type == "llama3") {
    rope["factor"] = c.rope.factor;
    rope["low_freq_factor"] = c.rope.low_freq_factor;
    rope["high_freq_factor"] = c.rope.high_freq_factor;
    rope["original_max_position_embeddings"] = c.rope.original_max_position_embeddings;
  }
  j["rope_parameters"] = rope;
  // transformers 4 reads these instead.
  j["rope_theta"] = c.rope.theta;
  if (c.rope.type == "llama3") j["rope_scaling"] = rope;
  j["dtype"] = c.dtype;
  j["torch_dtype"] = c.dtype;
  if (c.bos_token_id) j["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  if (c.pad_token_id) j["pad_token_id"] = *c.pad_token_id;
  return j.dump(2) + "\n";
}

model_config small_model_config(const policy_section& p, std::int64_t vocab_size) {
  model_config c;
  c.architecture = p.architecture;
  c.model_type = p.architecture == "Qwen2ForCausalLM" ? "qwen2" : p.architecture == "MistralForCausalLM" ? "mistral" : "llama";
  c.vocab_size = vocab_size;
  c.hidden_size = p.hidden_size;
  c.intermediate_size = p.intermediate_size;
  c.num_hidden_layers = p.num_hidden_layers;
  c.num_attention_heads = p.num_attention_heads;
  c.num_key_value_heads = p.num_key_value_heads;
  c.head_dim = p.hidden_size / p.num_attention_heads;
  c.max_position_embeddings = p.max_position_embeddings;
  c.rope.theta = p.rope_theta;
  c.tie_word_embeddings = p.tie_word_embeddings;
  c.qkv_bias = p.architecture == "Qwen2ForCausalLM";
  c.dtype = p.dtype;
  if (p.hidden_size % p.num_attention_heads != 0)
    throw input_error("policy.num_attention_heads: " + std::to_string(p.num_attention_heads) +
                      " does not divide policy.hidden_size " + std::to_string(p.hidden_size));
  c.validate("policy");
  return c;
}

}  // namespace troupe
