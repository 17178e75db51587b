#!/usr/bin/env bash
# BPE encode throughput, troupe vs Hugging Face `tokenizers`, same tokenizer.json and
# text, same run, one thread each (docs/BENCHMARKS.md). The same id counts on both sides
# say they did the same work.
#   bench/tokenizer_side_by_side.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
py=${TROUPE_VENV:-$HOME/.cache/troupe/venv}/bin/python
text=tests/fixtures/make_tokenizer_fixtures.py
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
for style in gpt2 llama3 qwen2; do
  dir=tests/fixtures/tokenizers/$style
  t=$("$build/bench/tokenizer_bench" --dir "$dir" --text "$text")
  h=$("$py" bench/tokenizer_hf.py --dir "$dir" --text "$text")
  echo "$style"
  paste -d'\n' <(sed 's/^/  /' <<<"$t") <(sed 's/^/  /' <<<"$h")
  for kind in text lines runs; do
    awk -v a="$(sed -nE "s/^troupe $kind: ([0-9.]+) MB.*/\1/p" <<<"$t")" \
        -v b="$(sed -nE "s/^tokenizers $kind: ([0-9.]+) MB.*/\1/p" <<<"$h")" \
        -v k="$kind" 'BEGIN { printf "  ratio troupe/tokenizers, %s: %.2fx\n", k, a / b }'
  done
done
