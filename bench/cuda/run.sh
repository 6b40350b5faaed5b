#!/usr/bin/env bash
# The golden checks on burn's CUDA backend, on a GPU machine that has no Rust: the binary is
# built here and carried (the device tool carries ignored paths: bench/out/cuda/).
#
#   # on the build machine:
#   cargo build -p model --features cuda --example cuda_check
#   mkdir -p bench/out/cuda && cp "${CARGO_TARGET_DIR:-target}/debug/examples/cuda_check" bench/out/cuda/
#   strip bench/out/cuda/cuda_check
#   # on the GPU machine, from the repository root:
#   bench/cuda/run.sh [OUT_DIR]
#
# Writes plain.jsonl and fused.jsonl (one line per fixture of tests/fixtures/models: max
# |logit diff| against transformers' golden logits, greedy equality) and env.txt to OUT_DIR
# (default bench/out/cuda/results). Exit status: non-zero when a check failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/out/cuda/results}
mkdir -p "$OUT"
BIN=bench/out/cuda/cuda_check
# cubecl compiles its kernels with NVRTC at run time, loaded by name: make the toolkit's and
# pip's copies findable.
for lib in $(find /usr/local /usr/lib /opt -name 'libnvrtc.so*' 2>/dev/null | sort -u); do
  LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  nvcc --version 2>&1 | tail -1
  ldd "$BIN" 2>&1 | grep -E "not found|libc.so" || true
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
} > "$OUT/env.txt"
status=0
for mode in plain fused; do
  flag=""
  [ "$mode" = fused ] && flag=--fused
  "$BIN" tests/fixtures/models $flag > "$OUT/$mode.jsonl" 2> "$OUT/$mode.err" || status=1
done
cat "$OUT/env.txt" "$OUT"/*.jsonl "$OUT"/*.err
exit $status
