#include "algorithms/losses.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/error.hpp"

namespace troupe {

// ---- loss_metrics ----------------------------------------------------------------------

loss_metrics::entry& loss_metrics::slot(const std::string& name, reduction how) {
  auto [it, fresh] = entries_.try_emplace(name);
  if (fresh) {
    it->second.how = how;
    if (how == reduction::min) it->second.a = std::numeric_limits<double>::infinity();
    if (how == reduction::max) it->second.a = -std::numeric_limits<double>::infinity();
  } else if (it->second.how != how) {
    throw std::logic_error("loss_metrics: metric '" + name + "' merged with two different reductions");
  }
  return it->second;
}

void loss_metrics::add_mean(const std::string& name, double sum, double count) {
  auto& e = slot(name, reduction::mean);
  e.a += sum;
  e.b += count;
}

void loss_metrics::add_sum(const std::string& name, double value) { slot(name, reduction::sum).a += value; }

void loss_metrics::add_min(const std::string& name, double value) {
  auto& e = slot(name, reduction::min);
  e.a = std::min(e.a, value);
}

void loss_metrics::add_max(const std::string& name, double value) {
  auto& e = slot(name, reduction::max);
  e.a = std::max(e.a, value);
}

void loss_metrics::add(const loss_metrics& other) {
  for (const auto& [name, e] : other.entries_) {
    switch (e.how) {
      case reduction::mean: add_mean(name, e.a, e.b); break;
      case reduction::sum: add_sum(name, e.a); break;
      case reduction::min: add_min(name, e.a); break;
      case reduction::max: add_max(name, e.a); break;
    }
  }
}

bool loss_metrics::contains(const std::string& name) const { return entries_.count(name) != 0; }

double loss_metrics::value(const std::string& name) const {
  const entry& e = entries_.at(name);
  if (e.how == reduction::mean) return e.b > 0 ? e.a / e.b : 0.0;
  return e.a;
}

std::map<std::string, double> loss_metrics::finalize() const {
  std::map<std::string, double> out;
  for (const auto& [name, e] : entries_) {
    if ((e.how == reduction::min || e.how == reduction::max) && std::isinf(e.a)) continue;
    out[name] = value(name);
  }
  return out;
}

// One line per metric: name, reduction, a, b as hex floats (names hold no tab or newline).
std::string loss_metrics::encode() const {
  std::string out;
  char num[64];
  for (const auto& [name, e] : entries_) {
    out += name + "\t" + std::to_string(static_cast<int>(e.how));
    for (double x : {e.a, e.b}) {
      std::snprintf(num, sizeof num, "\t%a", x);
      out += num;
    }
    out += "\n";
  }
  return out;
}

loss_metrics loss_metrics::decode(const std::string& text) {
  loss_metrics m;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto t1 = line.find('\t'), t2 = line.find('\t', t1 + 1), t3 = line.find('\t', t2 + 1);
    if (t1 == std::string::npos || t2 == std::string::npos || t3 == std::string::npos)
      throw std::invalid_argument("loss_metrics::decode: malformed line '" + line + "'");
    const int how = std::stoi(line.substr(t1 + 1, t2 - t1 - 1));
    if (how < 0 || how > static_cast<int>(reduction::max))
      throw std::invalid_argument("loss_metrics::decode: unknown reduction in '" + line + "'");
    entry e;
    e.how = static_cast<reduction>(how);
    e.a = std::strtod(line.c_str() + t2 + 1, nullptr);
    e.b = std::strtod(line.c_str() + t3 + 1, nullptr);
    m.entries_[line.substr(0, t1)] = e;
  }
  return m;
}

// ---- shared helpers --------------------------------------------------------------------------

namespace {

double item(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble).item<double>(); }

void require_shape(const torch::Tensor& t, torch::IntArrayRef shape, const char* what, const char* loss) {
  if (!t.defined()) throw input_error(std::string(loss) + ": " + what + " is missing");
  if (t.sizes() != shape) {
    throw input_error(std::string(loss) + ": " + what + " has shape " + c10::str(t.sizes()) + " but " +
                      c10::str(shape) + " was expected");
  }
}

void require_2d(const torch::Tensor& mask, const char* loss) {
  if (!mask.defined() || mask.dim() != 2) {
    throw input_error(std::string(loss) + ": mask must be a (B, T) tensor");
  }
}

// Values at masked positions may be anything; they become 0 before any arithmetic, so
// neither the value nor the gradient sees them.
torch::Tensor clean(const torch::Tensor& x, const torch::Tensor& valid /* (B, T) bool */) {
  return torch::where(valid, x, torch::zeros({}, x.options()));
}

// Checks a global normalizer against the microbatch's own count; returns the divisor
// (0 means the loss is 0).
double checked_normalizer(double global, double local, const char* name, const char* loss) {
  if (!std::isfinite(global) || global < 0) {
    throw input_error(std::string(loss) + ": " + name + " must be a finite count >= 0, got " + std::to_string(global));
  }
  if (global + 1e-9 < local) {
    throw input_error(std::string(loss) + ": " + name + " (" + std::to_string(global) +
                      ") is smaller than this microbatch's own count (" + std::to_string(local) +
                      "); pass the count of the whole global batch (sum count_totals over its microbatches)");
  }
  return global;
}

torch::Tensor divide(const torch::Tensor& sum, double by) { return by > 0 ? sum / by : sum * 0.0; }

// Sum over b of (sum_t x m / max(n_b, 1)): the numerator of a sequence-level loss.
torch::Tensor sum_of_sequence_means(const torch::Tensor& x /* (B, T) */, const torch::Tensor& m /* (B, T) */) {
  torch::Tensor n = m.sum(1).clamp_min(1.0);  // (B)
  return ((x * m).sum(1) / n).sum();
}

}  // namespace

batch_totals count_totals(const torch::Tensor& mask) {
  require_2d(mask, "count_totals");
  batch_totals t;
  t.tokens = item(mask.sum());
  t.sequences = item((mask.sum(1) > 0).sum());
  t.rows = static_cast<double>(mask.size(0));
  return t;
}

// ---- clipped policy gradient ------------------------------------------------------------------

void clipped_pg_config::validate() const {
  if (!(eps_low >= 0) || !(eps_high >= 0)) {
    throw input_error("loss: ratio_clip_min and ratio_clip_max (eps_low, eps_high) must be >= 0; the ratio is clipped to [1 - eps_low, 1 + eps_high], so set them to e.g. 0.2");
  }
  if (eps_low >= 1) {
    throw input_error("loss: ratio_clip_min (eps_low) must be < 1, otherwise the ratio has no lower clip at 1 - eps_low; use e.g. 0.2");
  }
  if (ratio_clip_c != 0 && !(ratio_clip_c > 1)) {
    throw input_error("loss: ratio_clip_c must be > 1 (it caps the loss of negative advantages at -A c, above the clip range), or 0 to turn dual clipping off; 3 is usual");
  }
  if (!(reference_policy_kl_penalty >= 0)) {
    throw input_error("loss: reference_policy_kl_penalty (beta) must be >= 0; use 0 to turn the KL term off");
  }
  if (reference_policy_kl_type != "k1" && reference_policy_kl_type != "k2" && reference_policy_kl_type != "k3") {
    throw input_error("loss: reference_policy_kl_type must be k1, k2 or k3, not '" + reference_policy_kl_type + "'");
  }
  if (!(kl_input_clamp_value >= 0) || !(kl_output_clamp_value >= 0)) {
    throw input_error("loss: kl_input_clamp_value and kl_output_clamp_value must be >= 0 (0 turns a clamp off)");
  }
  if (sequence_level_importance_ratios && token_level_loss) {
    throw input_error("loss: sequence_level_importance_ratios (GSPO) needs sequence-level normalization; set token_level_loss to false, or turn sequence_level_importance_ratios off");
  }
  const std::string& tis = truncated_importance_sampling_type;
  if (!tis.empty() && tis != "tis" && tis != "icepop") {
    throw input_error("loss: truncated_importance_sampling_type must be '', tis or icepop, not '" + tis + "'");
  }
  if (!tis.empty() && !use_importance_sampling_correction) {
    throw input_error("loss: truncated_importance_sampling_type '" + tis + "' needs use_importance_sampling_correction: true; set it, or set the type to ''");
  }
  if (tis == "tis" && !(truncated_importance_sampling_ratio > 0)) {
    throw input_error("loss: truncated_importance_sampling_ratio (the TIS cap) must be > 0; 2 is usual");
  }
  if (tis == "icepop" && !(truncated_importance_sampling_ratio_min < truncated_importance_sampling_ratio)) {
    throw input_error("loss: icepop keeps tokens whose weight lies in [truncated_importance_sampling_ratio_min, truncated_importance_sampling_ratio], so the min must be below the max; 0.5 and 5 are usual");
  }
  if (tis == "icepop" && !(truncated_importance_sampling_ratio_min >= 0)) {
    throw input_error("loss: truncated_importance_sampling_ratio_min must be >= 0");
  }
}

torch::Tensor kl_estimate(const torch::Tensor& lp, const torch::Tensor& lp_ref, const std::string& kl_type,
                          double input_clamp, double output_clamp) {
  torch::Tensor logr = lp_ref - lp;  // (B, T)
  if (input_clamp > 0) logr = logr.clamp(-input_clamp, input_clamp);
  torch::Tensor kl;  // (B, T)
  if (kl_type == "k1") {
    kl = -logr;
  } else if (kl_type == "k2") {
    kl = 0.5 * logr.square();
  } else if (kl_type == "k3") {
    kl = logr.exp() - 1 - logr;
  } else {
    throw input_error("kl_estimate: unknown KL type '" + kl_type + "' (k1, k2 or k3)");
  }
  if (output_clamp > 0) kl = kl.clamp(-output_clamp, output_clamp);
  return kl;
}

namespace {

// The per-token (B, T) tensors of a clipped PG loss, cleaned off the mask: what the loss
// and its diagnostics are computed from.
struct pg_terms {
  torch::Tensor valid;          // (B, T) bool
  torch::Tensor m;              // (B, T) mask in lp's dtype
  torch::Tensor lp, lp_old, lp_gen, adv;
  torch::Tensor ratio;          // (B, T): per token, or GSPO's per sequence broadcast
  torch::Tensor ratio_clamped;  // (B, T)
  torch::Tensor w;              // (B, T) or (B, 1): importance weights, no gradient
  torch::Tensor icepop_kept;    // (B, T) or (B, 1) bool; undefined unless icepop
  batch_totals local;           // of this microbatch's mask
  double lo = 0, hi = 0;        // the clip range of the ratio
};

// Ratio r: per token, or GSPO's per-sequence s broadcast over the tokens.
torch::Tensor policy_ratio(const clipped_pg_config& cfg, const pg_terms& t) {
  const auto B = t.m.size(0), T = t.m.size(1);
  const torch::Tensor log_ratio = t.lp - t.lp_old;  // (B, T)
  if (!cfg.sequence_level_importance_ratios) return log_ratio.exp();
  torch::Tensor seq_log_ratio = (log_ratio * t.m).sum(1) / t.m.sum(1).clamp_min(1.0);  // (B)
  return seq_log_ratio.exp().unsqueeze(1).expand({B, T});
}

// Importance weights w between generator and trainer (no gradient), truncated (tis) or
// masked outside a band (icepop); sets t.w and t.icepop_kept.
void importance_weights(const clipped_pg_config& cfg, pg_terms& t) {
  torch::Tensor w;  // (B, T) or (B, 1)
  if (cfg.sequence_level_importance_ratios) {
    w = ((t.lp_old - t.lp_gen) * t.m).sum(1, /*keepdim=*/true).exp();  // (B, 1)
  } else {
    w = (t.lp_old - t.lp_gen).exp();  // (B, T)
  }
  w = torch::nan_to_num(w, 0.0, 0.0, 0.0);
  if (cfg.truncated_importance_sampling_type == "tis") {
    w = w.clamp_max(cfg.truncated_importance_sampling_ratio);
  } else if (cfg.truncated_importance_sampling_type == "icepop") {
    t.icepop_kept = (w >= cfg.truncated_importance_sampling_ratio_min) & (w <= cfg.truncated_importance_sampling_ratio);
    w = torch::where(t.icepop_kept, w, torch::zeros({}, w.options()));
  }
  t.w = w;
}

// The diagnostics NeMo RL reports beside the loss (token means over this microbatch).
void add_pg_diagnostics(const clipped_pg_config& cfg, const pg_terms& t, loss_metrics& mt) {
  torch::NoGradGuard no_grad;
  const auto B = t.m.size(0), T = t.m.size(1);
  const auto& m = t.m;
  const auto& adv = t.adv;
  const auto& lp_old = t.lp_old;
  const auto& lp_gen = t.lp_gen;
  const double n = t.local.tokens;
  auto token_sum = [&](const torch::Tensor& x) { return item((x.to(m.scalar_type()) * m).sum()); };
  const torch::Tensor r = t.ratio.detach();  // (B, T)
  mt.add_mean("clip_fraction_low", token_sum((adv < 0) & (r < t.lo)), n);
  mt.add_mean("clip_fraction_high", token_sum((adv > 0) & (r > t.hi)), n);
  if (cfg.ratio_clip_c > 0) mt.add_mean("dual_clip_fraction", token_sum((adv < 0) & (r > cfg.ratio_clip_c)), n);
  mt.add_mean("approx_kl", token_sum((r - 1) - r.log()), n);
  mt.add_mean("probs_ratio", token_sum(r), n);
  mt.add_mean("probs_ratio_clamped", token_sum(t.ratio_clamped.detach()), n);
  if (n > 0) {
    mt.add_min("probs_ratio_min", item(r.masked_select(t.valid).min()));
    mt.add_max("probs_ratio_max", item(r.masked_select(t.valid).max()));
  }
  mt.add_mean("token_mult_prob_error", token_sum((lp_gen - lp_old).abs().exp()), n);
  const std::string& k = cfg.reference_policy_kl_type;
  mt.add_mean("gen_kl_error", token_sum(kl_estimate(lp_gen, lp_old, k, 0, 0)), n);
  mt.add_mean("policy_kl_error", token_sum(kl_estimate(lp_old, lp_gen, k, 0, 0)), n);
  {
    // JS divergence of the two token probabilities, each term an exp(x) - 1 - x.
    torch::Tensor log_mix = (0.5 * lp_old.exp() + 0.5 * lp_gen.exp()).log();  // (B, T)
    torch::Tensor a = lp_old - log_mix, b = lp_gen - log_mix;                  // (B, T)
    mt.add_mean("js_divergence_error", token_sum(0.5 * (a.exp() - a - 1) + 0.5 * (b.exp() - b - 1)), n);
  }
  if (cfg.sequence_level_importance_ratios) {
    mt.add_mean("sampling_importance_ratio", item((t.w.squeeze(1) * (m.sum(1) > 0)).sum()), t.local.sequences);
  } else {
    mt.add_mean("sampling_importance_ratio", token_sum(t.w), n);
  }
  if (t.icepop_kept.defined()) {
    mt.add_mean("is_oob_ratio", token_sum(~t.icepop_kept.expand({B, T})), n);
  }
  const torch::Tensor lpd = t.lp.detach();
  mt.add_mean("approx_entropy", token_sum(-(lpd - lp_gen).exp() * lpd), n);
}

}  // namespace

loss_result clipped_pg_loss(const clipped_pg_config& cfg, const pg_inputs& in, const batch_totals& global) {
  cfg.validate();
  const char* name = "clipped_pg_loss";
  require_2d(in.mask, name);
  const auto shape = in.mask.sizes();
  const std::int64_t B = shape[0], T = shape[1];
  require_shape(in.lp, shape, "lp", name);
  require_shape(in.lp_old, shape, "lp_old", name);
  if (in.lp_gen.defined()) require_shape(in.lp_gen, shape, "lp_gen", name);
  const double beta = cfg.reference_policy_kl_penalty;
  if (beta != 0 || in.lp_ref.defined()) require_shape(in.lp_ref, shape, "lp_ref", name);
  if (!in.advantages.defined() || !(in.advantages.sizes() == torch::IntArrayRef{B} || in.advantages.sizes() == shape)) {
    throw input_error("clipped_pg_loss: advantages must be (B) or (B, T) with B, T of the mask " + c10::str(shape));
  }

  pg_terms t;
  t.valid = in.mask > 0;                                   // (B, T) bool
  t.m = in.mask.to(in.lp.scalar_type()) * t.valid;         // (B, T)
  t.local = count_totals(t.m);
  const double norm_tokens = checked_normalizer(global.tokens, t.local.tokens, "global tokens", name);
  const double norm_seqs =
      cfg.token_level_loss ? 0.0 : checked_normalizer(global.sequences, t.local.sequences, "global sequences", name);
  auto normalize = [&](const torch::Tensor& term /* (B, T) */) {
    return cfg.token_level_loss ? divide((term * t.m).sum(), norm_tokens)
                                : divide(sum_of_sequence_means(term, t.m), norm_seqs);
  };

  t.lp = clean(in.lp, t.valid);                                                 // (B, T)
  t.lp_old = clean(in.lp_old.detach(), t.valid);                                // (B, T)
  t.lp_gen = in.lp_gen.defined() ? clean(in.lp_gen.detach(), t.valid) : t.lp_old;  // (B, T)
  t.adv = clean(
      (in.advantages.dim() == 1 ? in.advantages.unsqueeze(1).expand({B, T}) : in.advantages).detach().to(t.lp.scalar_type()),
      t.valid);  // (B, T)

  t.ratio = policy_ratio(cfg, t);
  t.lo = 1.0 - cfg.eps_low, t.hi = 1.0 + cfg.eps_high;
  t.ratio_clamped = t.ratio.clamp(t.lo, t.hi);                                  // (B, T)
  torch::Tensor pg = torch::max(-t.adv * t.ratio, -t.adv * t.ratio_clamped);   // (B, T)
  if (cfg.ratio_clip_c > 0) pg = torch::where(t.adv < 0, torch::min(pg, -t.adv * cfg.ratio_clip_c), pg);
  importance_weights(cfg, t);
  const torch::Tensor pg_loss = normalize(cfg.use_importance_sampling_correction ? t.w * pg : pg);  // ()

  torch::Tensor kl_term;  // () normalized, without beta
  if (in.lp_ref.defined()) {
    torch::Tensor kl = kl_estimate(t.lp, clean(in.lp_ref.detach(), t.valid), cfg.reference_policy_kl_type,
                                   cfg.kl_input_clamp_value, cfg.kl_output_clamp_value);  // (B, T)
    if (cfg.use_on_policy_kl_approximation) {
      kl = torch::nan_to_num((t.lp - t.lp_gen).detach().exp(), 0.0, 0.0, 0.0) * kl;
    }
    kl_term = normalize(kl);
  }
  torch::Tensor loss = beta != 0 ? pg_loss + beta * kl_term : pg_loss;  // ()

  loss_result out;
  out.loss = loss;
  out.metrics.add_sum("loss", item(loss));
  out.metrics.add_sum("pg_loss", item(pg_loss));
  if (kl_term.defined()) out.metrics.add_sum("kl_penalty", item(kl_term));
  add_pg_diagnostics(cfg, t, out.metrics);
  return out;
}

// ---- DPO / IPO -----------------------------------------------------------------------------

void dpo_config::validate() const {
  if (!(reference_policy_kl_penalty > 0)) {
    throw input_error("dpo: reference_policy_kl_penalty (beta) must be > 0: it scales the implicit reward (and IPO divides by it); 0.05 to 0.1 is usual");
  }
  if (preference_loss != "sigmoid" && preference_loss != "ipo") {
    throw input_error("dpo: preference_loss must be sigmoid or ipo, not '" + preference_loss + "'");
  }
  if (!(preference_loss_weight >= 0) || !(sft_loss_weight >= 0)) {
    throw input_error("dpo: preference_loss_weight and sft_loss_weight must be >= 0");
  }
}

loss_result dpo_loss(const dpo_config& cfg, const dpo_inputs& in, double global_pairs) {
  cfg.validate();
  const char* name = "dpo_loss";
  require_2d(in.mask_chosen, name);
  require_2d(in.mask_rejected, name);
  require_shape(in.lp_chosen, in.mask_chosen.sizes(), "lp_chosen", name);
  require_shape(in.lp_ref_chosen, in.mask_chosen.sizes(), "lp_ref_chosen", name);
  require_shape(in.lp_rejected, in.mask_rejected.sizes(), "lp_rejected", name);
  require_shape(in.lp_ref_rejected, in.mask_rejected.sizes(), "lp_ref_rejected", name);
  const std::int64_t P = in.mask_chosen.size(0);
  if (in.mask_rejected.size(0) != P) throw input_error("dpo_loss: chosen and rejected must have the same number of pairs");
  const double norm = checked_normalizer(global_pairs, static_cast<double>(P), "global pairs", name);

  const auto dtype = in.lp_chosen.scalar_type();
  // Per response: r = sum_t (lp - lp_ref), optionally / length; the NLL likewise.
  struct side {
    torch::Tensor lp, m, n;  // (P, T), (P, T), (P)
    torch::Tensor r;         // (P)
  };
  auto make = [&](const torch::Tensor& lp_raw, const torch::Tensor& ref_raw, const torch::Tensor& mask) {
    side s;
    const torch::Tensor valid = mask > 0;
    s.m = mask.to(dtype) * valid;
    s.lp = clean(lp_raw, valid);
    s.n = s.m.sum(1).clamp_min(1.0);
    s.r = ((s.lp - clean(ref_raw.detach(), valid)) * s.m).sum(1);
    if (cfg.preference_average_log_probs) s.r = s.r / s.n;
    return s;
  };
  const side c = make(in.lp_chosen, in.lp_ref_chosen, in.mask_chosen);
  const side j = make(in.lp_rejected, in.lp_ref_rejected, in.mask_rejected);
  const double beta = cfg.reference_policy_kl_penalty;
  const torch::Tensor delta = c.r - j.r;  // (P)
  torch::Tensor pref;                      // (P)
  if (cfg.preference_loss == "sigmoid") {
    pref = -torch::log_sigmoid(beta * delta);
  } else {
    pref = (delta - 1.0 / (2.0 * beta)).square();
  }
  torch::Tensor sft = -(c.lp * c.m).sum(1);  // (P)
  if (cfg.sft_average_log_probs) sft = sft / c.n;
  const torch::Tensor pref_loss = divide(pref.sum(), norm);  // ()
  const torch::Tensor sft_loss = divide(sft.sum(), norm);    // ()
  torch::Tensor loss = cfg.preference_loss_weight * pref_loss;
  if (cfg.sft_loss_weight != 0) loss = loss + cfg.sft_loss_weight * sft_loss;

  loss_result out;
  out.loss = loss;
  auto& mt = out.metrics;
  const double pairs = static_cast<double>(P);
  mt.add_sum("loss", item(loss));
  mt.add_sum("preference_loss", item(pref_loss));
  mt.add_sum("sft_loss", item(sft_loss));
  torch::NoGradGuard no_grad;
  mt.add_mean("accuracy", item((c.r > j.r).sum()), pairs);
  mt.add_mean("rewards_chosen_mean", item(beta * c.r.sum()), pairs);
  mt.add_mean("rewards_rejected_mean", item(beta * j.r.sum()), pairs);
  mt.add_mean("reward_margin", item(beta * delta.sum()), pairs);
  return out;
}

// ---- distillation --------------------------------------------------------------------------------

void distillation_config::validate() const {
  if (kl_type != "forward" && kl_type != "reverse" && kl_type != "mixed") {
    throw input_error("distillation: kl_type must be forward, reverse or mixed, not '" + kl_type + "'");
  }
  if (!(mixed_kl_weight >= 0 && mixed_kl_weight <= 1)) {
    throw input_error("distillation: mixed_kl_weight (lambda) must lie in [0, 1]: mixed = lambda forward + (1 - lambda) reverse; use 1 for forward only, 0 for reverse only");
  }
  if (topk_logits_k < 1) throw input_error("distillation: topk_logits_k must be >= 1");
}

void distillation_config::validate(std::int64_t vocab_size) const {
  validate();
  if (topk_logits_k > vocab_size) {
    throw input_error("distillation: topk_logits_k (" + std::to_string(topk_logits_k) +
                      ") is larger than the vocabulary (" + std::to_string(vocab_size) +
                      "); set topk_logits_k to at most the vocabulary size");
  }
}

loss_result distillation_loss(const distillation_config& cfg, const distillation_inputs& in, double global_tokens) {
  cfg.validate();
  const char* name = "distillation_loss";
  require_2d(in.mask, name);
  const std::int64_t B = in.mask.size(0), T = in.mask.size(1);
  if (!in.student_logits.defined() || in.student_logits.dim() != 3 || in.student_logits.size(0) != B ||
      in.student_logits.size(1) != T) {
    throw input_error("distillation_loss: student_logits must be (B, T, V) with B, T of the mask");
  }
  const std::int64_t V = in.student_logits.size(2);
  if (!in.teacher_topk_indices.defined() || in.teacher_topk_indices.dim() != 3) {
    throw input_error("distillation_loss: teacher_topk_indices must be (B, T, k)");
  }
  const std::int64_t k = in.teacher_topk_indices.size(2);
  require_shape(in.teacher_topk_indices, {B, T, k}, "teacher_topk_indices", name);
  require_shape(in.teacher_topk_logits, {B, T, k}, "teacher_topk_logits", name);
  if (k < 1 || k > V) {
    throw input_error("distillation_loss: the teacher sent top-" + std::to_string(k) + " logits for a vocabulary of " +
                      std::to_string(V) + "; k must lie in [1, V] (set topk_logits_k at most the vocabulary size)");
  }
  const torch::Tensor idx = in.teacher_topk_indices.to(torch::kLong);  // (B, T, k)
  const torch::Tensor valid = in.mask > 0;                            // (B, T)
  if (k > 0 && B * T > 0) {
    torch::Tensor used = idx.masked_select(valid.unsqueeze(2).expand({B, T, k}));
    if (used.numel() > 0 && (item(used.min()) < 0 || item(used.max()) >= static_cast<double>(V))) {
      throw input_error("distillation_loss: teacher_topk_indices hold ids outside [0, V)");
    }
  }
  const torch::Tensor safe_idx = torch::where(valid.unsqueeze(2), idx, torch::zeros({}, idx.options()));  // (B, T, k)
  const torch::Tensor valid3 = valid.unsqueeze(2);                                                         // (B, T, 1)
  const torch::Tensor s_logits = torch::where(valid3, in.student_logits.gather(2, safe_idx),
                                              torch::zeros({}, in.student_logits.options()));  // (B, T, k)
  const auto dtype = s_logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor log_q = torch::log_softmax(s_logits.to(dtype), 2);  // (B, T, k)
  const torch::Tensor t_logits = torch::where(valid3, in.teacher_topk_logits.detach().to(dtype),
                                              torch::zeros({}, dtype == torch::kDouble ? torch::kDouble : torch::kFloat));
  const torch::Tensor log_p = torch::log_softmax(t_logits, 2);  // (B, T, k)
  const torch::Tensor fwd = (log_p.exp() * (log_p - log_q)).sum(2);  // (B, T)
  const torch::Tensor rev = (log_q.exp() * (log_q - log_p)).sum(2);  // (B, T)
  torch::Tensor per_token;                                           // (B, T)
  if (cfg.kl_type == "forward") {
    per_token = fwd;
  } else if (cfg.kl_type == "reverse") {
    per_token = rev;
  } else {
    per_token = cfg.mixed_kl_weight * fwd + (1.0 - cfg.mixed_kl_weight) * rev;
  }
  const torch::Tensor m = in.mask.to(dtype) * valid;  // (B, T)
  const double n = item(m.sum());
  const double norm = checked_normalizer(global_tokens, n, "global tokens", name);
  const torch::Tensor loss = divide((per_token * m).sum(), norm);

  loss_result out;
  out.loss = loss;
  out.metrics.add_sum("loss", item(loss));
  out.metrics.add_mean("forward_kl", item((fwd * m).sum()), n);
  out.metrics.add_mean("reverse_kl", item((rev * m).sum()), n);
  return out;
}

// ---- SFT, entropy, helpers ------------------------------------------------------------------------

loss_result nll_loss(const torch::Tensor& lp, const torch::Tensor& mask, double global_tokens) {
  const char* name = "nll_loss";
  require_2d(mask, name);
  require_shape(lp, mask.sizes(), "lp", name);
  const torch::Tensor valid = mask > 0;
  const torch::Tensor m = mask.to(lp.scalar_type()) * valid;  // (B, T)
  const double n = item(m.sum());
  const double norm = checked_normalizer(global_tokens, n, "global tokens", name);
  const torch::Tensor sum = -(clean(lp, valid) * m).sum();  // ()
  const torch::Tensor loss = divide(sum, norm);
  loss_result out;
  out.loss = loss;
  out.metrics.add_sum("loss", item(loss));
  out.metrics.add_mean("nll", item(sum), n);
  out.metrics.add_sum("tokens", n);
  return out;
}

torch::Tensor gather_token_logprobs(const torch::Tensor& logits, const torch::Tensor& tokens) {
  if (!logits.defined() || logits.dim() != 3 || !tokens.defined() || tokens.dim() != 2 ||
      tokens.size(0) != logits.size(0) || tokens.size(1) != logits.size(1)) {
    throw input_error("gather_token_logprobs: logits must be (B, T, V) and tokens (B, T)");
  }
  const auto dtype = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor x = logits.to(dtype);                                  // (B, T, V)
  const torch::Tensor picked = x.gather(2, tokens.to(torch::kLong).unsqueeze(2)).squeeze(2);  // (B, T)
  return picked - torch::logsumexp(x, 2);                                    // (B, T)
}

entropy_sum masked_entropy(const torch::Tensor& logits, const torch::Tensor& mask, std::int64_t chunk_bytes) {
  require_2d(mask, "masked_entropy");
  if (!logits.defined() || logits.dim() != 3 || logits.size(0) != mask.size(0) || logits.size(1) != mask.size(1)) {
    throw input_error("masked_entropy: logits must be (B, T, V) with B, T of the mask");
  }
  const std::int64_t B = logits.size(0), T = logits.size(1), V = logits.size(2);
  const auto dtype = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const std::int64_t row_bytes = std::max<std::int64_t>(1, T * V * static_cast<std::int64_t>(c10::elementSize(dtype)));
  const std::int64_t rows = std::max<std::int64_t>(1, chunk_bytes / row_bytes);
  const torch::Tensor valid = mask > 0;             // (B, T)
  const torch::Tensor m = mask.to(dtype) * valid;   // (B, T)
  entropy_sum out;
  out.sum = torch::zeros({}, logits.options().dtype(dtype));
  for (std::int64_t b0 = 0; b0 < B; b0 += rows) {
    const std::int64_t b1 = std::min(B, b0 + rows);
    const torch::Tensor v = valid.slice(0, b0, b1).unsqueeze(2);                       // (b, T, 1)
    const torch::Tensor x = torch::where(v, logits.slice(0, b0, b1).to(dtype),
                                         torch::zeros({}, logits.options().dtype(dtype)));  // (b, T, V)
    const torch::Tensor lsm = torch::log_softmax(x, 2);                                  // (b, T, V)
    const torch::Tensor ent = -(lsm.exp() * lsm).sum(2);                                 // (b, T)
    out.sum = out.sum + (ent * m.slice(0, b0, b1)).sum();
  }
  out.tokens = item(m.sum());
  return out;
}

bool all_finite(const torch::Tensor& t) { return !t.defined() || torch::isfinite(t.detach()).all().item<bool>(); }

bool all_finite(const std::vector<torch::Tensor>& ts) {
  torch::Tensor ok;  // () bool on the first tensor's device: one sync at the end
  for (const auto& t : ts) {
    if (!t.defined() || t.numel() == 0) continue;
    torch::Tensor flag = torch::isfinite(t.detach()).all();
    ok = ok.defined() ? ok.logical_and(flag.to(ok.device())) : flag;
  }
  return !ok.defined() || ok.item<bool>();
}

bool all_grads_finite(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters) {
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  }
  return all_finite(grads);
}

}  // namespace troupe
