#!/usr/bin/env bash
# Generation throughput, troupe vs transformers' generate, on the same weights and
# settings, in the same run (docs/BENCHMARKS.md). CPU, float32, greedy, every sequence
# forced to the full length.
#   bench/generation_side_by_side.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
py=${TROUPE_VENV:-$HOME/.cache/troupe/venv}/bin/python
"$py" -c "import transformers" 2>/dev/null || "${py%python}pip" install -q transformers
big=$build/bench-models/llama-110m
[ -f "$big/config.json" ] || "$py" bench/make_bench_model.py "$big"

run() {  # model batch new prompt
  local t h
  t=$("$build/bench/generate_bench" --model "$1" --batch "$2" --new "$3" --prompt "$4")
  h=$("$py" bench/hf_generate.py --model "$1" --batch "$2" --new "$3" --prompt "$4" 2>/dev/null)
  echo "$t"
  echo "$h"
  awk -v a="$(sed -E 's/.*: ([0-9.]+) new tokens.*/\1/' <<<"$t")" \
      -v b="$(sed -E 's/.*: ([0-9.]+) new tokens.*/\1/' <<<"$h")" \
      'BEGIN { printf "  ratio troupe/transformers: %.2fx\n", a / b }'
}
for b in 1 16 64; do run tests/fixtures/hf/llama "$b" 64 16; done
for b in 1 16 64; do run "$big" "$b" 32 32; done
