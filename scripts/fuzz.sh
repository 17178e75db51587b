#!/usr/bin/env bash
# Builds one libFuzzer target with clang (address + undefined sanitizers) and runs it.
#   scripts/fuzz.sh TARGET [SECONDS] [BUILD_DIR] [SEED]
# TARGET is safetensors, tokenizer, environments, rails, env_protocol or model_files;
# each fuzzes a parser of outside bytes. A crash leaves its input in BUILD_DIR and the
# script exits non-zero.
# SEED 0 (the default) is a random seed, for exploring: the corpus starts from
# tests/fuzz/corpus/TARGET and grows in BUILD_DIR. ctest passes a fixed seed, and then
# the corpus is a fresh copy of the committed one, so that every suite run repeats the
# same mutations from the same start instead of failing on a new find.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [BUILD_DIR] [SEED]}
seconds=${2:-20}
out=${3:-build/fuzz}
seed=${4:-0}
if [ "$seed" = 0 ]; then
  corpus="$out/corpus-$target"
  mkdir -p "$corpus"
else
  corpus=$(mktemp -d)
  trap 'rm -rf "$corpus"' EXIT
fi
mkdir -p "$out"

case "$target" in
  safetensors) sources="policies/safetensors.cpp core/error.cpp" ;;
  tokenizer)   sources="policies/tokenizers/tokenizer.cpp policies/tokenizers/bpe_tokenizer.cpp policies/tokenizers/char_tokenizer.cpp policies/tokenizers/unicode_text.cpp policies/tokenizers/unicode_nfc_tables.cpp core/error.cpp" ;;
  environments) sources="environments/calculator.cpp environments/countdown.cpp environments/expression.cpp environments/guess_number.cpp environments/jsonl_tasks.cpp environments/options.cpp environments/registry.cpp environments/tags.cpp environments/task_source.cpp core/config_binding.cpp core/config_tree.cpp core/error.cpp"
               libs="-lyaml-cpp" ;;
  rails)       sources="$(ls guardrails/*.cpp) core/config_tree.cpp core/config_binding.cpp core/error.cpp"
               libs="-lyaml-cpp -pthread" ;;
  env_protocol) sources="environments/external/env_protocol.cpp core/error.cpp" ;;
  model_files) sources="policies/model_config.cpp policies/safetensors.cpp policies/tokenizers/tokenizer.cpp policies/tokenizers/bpe_tokenizer.cpp policies/tokenizers/char_tokenizer.cpp policies/tokenizers/unicode_text.cpp policies/tokenizers/unicode_nfc_tables.cpp policies/tokenizers/chat_template.cpp environments/datasets.cpp environments/arithmetic.cpp environments/expression.cpp environments/options.cpp environments/registry.cpp environments/tags.cpp environments/task_source.cpp environments/jsonl_tasks.cpp actors/cluster_config.cpp core/net.cpp core/config_binding.cpp core/config_tree.cpp core/error.cpp"
               libs="-lyaml-cpp" ;;
  *) echo "fuzz.sh: unknown target '$target' (safetensors, tokenizer, environments, rails, env_protocol, model_files)" >&2; exit 2 ;;
esac

bin="$out/${target}_fuzz"
# shellcheck disable=SC2086
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I. $(pkg-config --cflags re2) -DMSGPACK_NO_BOOST -DMSGPACK_DEFAULT_API_VERSION=3 tests/fuzz/${target}_fuzz.cpp $sources \
  $(pkg-config --libs re2) ${libs:-} -o "$bin"
seeds=()
[ -d "tests/fuzz/corpus/$target" ] && seeds=("tests/fuzz/corpus/$target")
"$bin" -seed="$seed" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$out/crash-$target-" "$corpus" "${seeds[@]}"
