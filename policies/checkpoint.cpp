#include "policies/checkpoint.hpp"

#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.hpp"
#include "core/run_dir.hpp"
#include "policies/safetensors.hpp"

namespace troupe {

namespace {

torch::Dtype torch_dtype_of(st_dtype t, const std::string& file, const std::string& name) {
  switch (t) {
    case st_dtype::f32: return torch::kFloat32;
    case st_dtype::bf16: return torch::kBFloat16;
    case st_dtype::f16: return torch::kFloat16;
    default:
      throw input_error(file + ": tensor '" + name + "': dtype " + st_dtype_name(t) +
                        " is not a floating weight type (F32, BF16 or F16)");
  }
}

st_dtype st_dtype_of(torch::Dtype t) {
  if (t == torch::kFloat32) return st_dtype::f32;
  if (t == torch::kBFloat16) return st_dtype::bf16;
  if (t == torch::kFloat16) return st_dtype::f16;
  throw input_error("save_pretrained: unsupported dtype " + std::string(c10::toString(t)));
}

// Buffers and tensors of other tools that a checkpoint may carry harmlessly.
bool ignorable(const std::string& name) {
  return name.find("rotary_emb.inv_freq") != std::string::npos;
}

}  // namespace

causal_lm load_pretrained(const std::string& dir, const load_options& opts) {
  const auto config_path = (std::filesystem::path(dir) / "config.json").string();
  model_config cfg = read_model_config(config_path);
  auto ckpt = safetensors_checkpoint::open_dir(dir);

  causal_lm model(cfg);
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    if (!ckpt.contains(name))
      throw input_error(dir + ": missing tensor '" + name + "' (config.json describes a " + cfg.architecture + " with " +
                        std::to_string(cfg.num_hidden_layers) + " layers)");
    const auto& view = ckpt.tensor(name);
    const auto& file = ckpt.file_of(name);
    std::vector<std::int64_t> want(p.value().sizes().begin(), p.value().sizes().end());
    if (view.shape != want)
      throw input_error(file + ": tensor '" + name + "': shape " + shape_text(view.shape) + " disagrees with config.json, which implies " +
                        shape_text(want));
    const auto src_dtype = torch_dtype_of(view.dtype, file, name);
    torch::Tensor src;
    if (reinterpret_cast<std::uintptr_t>(view.data) % st_dtype_size(view.dtype) == 0) {
      src = torch::from_blob(const_cast<std::byte*>(view.data), view.shape, torch::TensorOptions().dtype(src_dtype));
    } else {  // a writer that did not align its data: copy out before reading elements
      src = torch::empty(view.shape, torch::TensorOptions().dtype(src_dtype));
      std::memcpy(src.data_ptr(), view.data, view.size_bytes);
    }
    p.value().copy_(src.to(torch::kFloat32));  // parameters are float32 until moved below
    used.insert(name);
  }
  for (const auto& name : ckpt.names()) {
    if (used.count(name) || ignorable(name)) continue;
    if (name == "lm_head.weight" && cfg.tie_word_embeddings) continue;  // a tied copy some tools write
    throw input_error(ckpt.file_of(name) + ": unexpected tensor '" + name + "' for a " + cfg.architecture +
                      " (is config.json for this checkpoint?)");
  }
  model->to(opts.device, opts.dtype);
  return model;
}

void save_pretrained(causal_lm& model, const std::string& dir, torch::Dtype dtype, std::size_t max_shard_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw system_error("save_pretrained: cannot create '" + dir + "': " + ec.message());

  // Contiguous CPU copies in the target dtype; they must outlive the write.
  std::vector<torch::Tensor> keep;
  std::vector<st_tensor_out> out;
  const st_dtype st = st_dtype_of(dtype);
  for (const auto& p : model->named_parameters()) {
    auto t = p.value().detach().to(torch::kCPU, dtype).contiguous();
    keep.push_back(t);
    st_tensor_out o;
    o.name = p.key();
    o.dtype = st;
    o.shape.assign(t.sizes().begin(), t.sizes().end());
    o.data = t.data_ptr();
    o.size_bytes = static_cast<std::size_t>(t.numel()) * t.element_size();
    out.push_back(std::move(o));
  }
  model_config cfg = model->config();
  cfg.dtype = dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kFloat16 ? "float16" : "float32";
  write_safetensors_checkpoint(dir, out, max_shard_bytes);
  write_file_atomically((std::filesystem::path(dir) / "config.json").string(), model_config_to_json(cfg));
}

void load_weights(causal_lm& model, const std::string& dir) {
  load_options lo;
  lo.dtype = model->dtype();
  lo.device = model->device();
  auto saved = load_pretrained(dir, lo);
  torch::NoGradGuard no_grad;
  auto src = saved->named_parameters();
  auto dst = model->named_parameters();
  if (src.size() != dst.size())
    throw input_error("checkpoint '" + dir + "': its model has " + std::to_string(src.size()) + " tensors, the policy " +
                      std::to_string(dst.size()));
  for (auto& p : dst) {
    const auto* s = src.find(p.key());
    if (s == nullptr || !s->sizes().equals(p.value().sizes()))
      throw input_error("checkpoint '" + dir + "': tensor '" + p.key() + "' is missing or has another shape");
    p.value().copy_(*s);
  }
}

}  // namespace troupe
