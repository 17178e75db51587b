#!/usr/bin/env bash
# The GRPO update, troupe against the same update in plain PyTorch + transformers, on the
# same weights and batches, in the same run (docs/BENCHMARKS.md "GRPO update"). One
# thread; the figure is trained tokens per CPU-second, steadier than wall time on a
# shared machine. Every line of one batch prints the same loss.
#   bench/grpo_update_side_by_side.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
repeats=${2:-2}
py=${TROUPE_VENV:-$HOME/.cache/troupe/venv}/bin/python
model=$build/bench-models/llama-110m
[ -f "$model/config.json" ] || "$py" bench/make_bench_model.py "$model"
export OMP_NUM_THREADS=1

rate() { sed -E 's/.* ([0-9.]+) tokens per CPU-second.*/\1/' <<<"$1"; }
row() {  # label, baseline rate, the command's output
  printf '  %-58s %8.1f tokens/CPU-s  troupe / this: %.2fx\n' "$1" "$(rate "$3")" \
    "$(awk -v a="$2" -v b="$(rate "$3")" 'BEGIN { print a / b }')"
}
side_by_side() {  # title, troupe's flags, the baselines' flags (each run also gets the shape flags)
  local shape=$1 troupe_flags=$2 t
  echo "== $shape"
  t=$("$build/bench/grpo_update_bench" --model "$model" --repeats "$repeats" $shape $troupe_flags | tail -1)
  echo "  $t"
  local r; r=$(rate "$t")
  row "PyTorch as written (default AdamW, all logits)" "$r" \
    "$("$py" bench/grpo_update_pytorch.py --model "$model" --repeats "$repeats" $shape 2>/dev/null | tail -1)"
  row "PyTorch, TRL's way (fused AdamW, logits_to_keep)" "$r" \
    "$("$py" bench/grpo_update_pytorch.py --model "$model" --repeats "$repeats" $shape --optimizer fused --logits response 2>/dev/null | tail -1)"
  if [ -n "$troupe_flags" ]; then
    row "PyTorch, TRL's way, sorted into the same budget by hand" "$r" \
      "$("$py" bench/grpo_update_pytorch.py --model "$model" --repeats "$repeats" $shape --optimizer fused --logits response $troupe_flags 2>/dev/null | tail -1)"
  fi
}
# GRPO-shaped: responses of 16 to 96 tokens, padded to the batch's longest (as TRL pads).
side_by_side "--batch 16 --lengths varied" "--microbatch-tokens 512"
# Every row 128 tokens: nothing to sort, the update is GEMM-bound.
side_by_side "--batch 8" ""
