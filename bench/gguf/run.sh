#!/usr/bin/env bash
# Generation speed on the default model's GGUF, selfinstruct vs llama.cpp (llama-cpp-python), on
# the same token-id chat prompts, in one invocation.
#
#   MODEL=path/to/SmolLM2-135M-Instruct.Q4_1.gguf LLAMA_PYTHON=venv/bin/python \
#     [HF_PYTHON=venv-with-torch-transformers-gguf/bin/python] bench/gguf/run.sh [THREADS] [NEW]
#
# selfinstruct decodes all 32 prompts as one batched job (and one prompt alone, batch 1), with
# its CPU engine and with the burn model (ENGINES="cpu burn");
# llama-cpp-python runs them one after another and, with --parallel, as parallel sequences of one
# context; transformers (when HF_PYTHON is set) loads the same GGUF dequantised to f32 and
# generates all prompts as one left-padded batch. Prints one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-2}
NEW=${2:-128}
: "${MODEL:?set MODEL to the .gguf file}"
PY=${LLAMA_PYTHON:-python3}
OUT=bench/out/gguf
mkdir -p "$OUT"
PROMPTS=$OUT/prompts32.jsonl
[ -f "$PROMPTS" ] || "$PY" bench/gguf/llama_cpp_bench.py "$MODEL" "$PROMPTS" --make-prompts 32
cargo build -p pipeline -p model --example decode_speed 2>&1 | tail -1
BIN=${CARGO_TARGET_DIR:-target}/debug/selfinstruct
echo "# $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/') threads=$THREADS new=$NEW"
head -1 "$PROMPTS" > "$OUT/prompt1.jsonl"
for B in 32 1; do
  P=$PROMPTS; [ "$B" = 1 ] && P=$OUT/prompt1.jsonl
  for ENGINE in ${ENGINES:-cpu burn}; do
    echo "selfinstruct engine=$ENGINE batch=$B"
    /usr/bin/time -f 'selfinstruct peak RSS %M KB' env SELFINSTRUCT_ENGINE="$ENGINE" RAYON_NUM_THREADS="$THREADS" \
      "$BIN" generate --model "$MODEL" --prompts "$P" --max-new-tokens "$NEW" --ignore-eos --greedy \
      --batch "$B" --json 2>&1 >/dev/null | grep -v '^\s*$'
  done
done
# Batch 1 with prefill and decode timed apart (the same engine as `generate`).
echo "selfinstruct batch 1, prefill and decode apart"
RAYON_NUM_THREADS="$THREADS" "${CARGO_TARGET_DIR:-target}/debug/examples/decode_speed" \
  "$MODEL" "$OUT/prompt1.jsonl" 1 "$NEW"
"$PY" bench/gguf/llama_cpp_bench.py "$MODEL" "$PROMPTS" --new "$NEW" --threads "$THREADS"
"$PY" bench/gguf/llama_cpp_bench.py "$MODEL" "$PROMPTS" --new "$NEW" --threads "$THREADS" --parallel
if [ -n "${HF_PYTHON:-}" ]; then
  "$HF_PYTHON" bench/gguf/hf_bench.py "$MODEL" "$PROMPTS" --new "$NEW" --threads "$THREADS"
fi
