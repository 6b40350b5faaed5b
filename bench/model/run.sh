#!/usr/bin/env bash
# Decode speed, selfinstruct (its CPU engine, and the burn model on flex; f32) vs transformers
# (CPU, f32, eager), on the same random Qwen2.5-0.5B-shaped checkpoint and the same token-id
# prompts, in one invocation. ENGINES="cpu burn" by default.
#
#   bench/model/run.sh [THREADS] [NEW_TOKENS]
#
# Needs a Python with torch + transformers: $PYTHON (default: python3). Writes the checkpoint
# and prompts under bench/out/ (git-ignored) once. Prints one JSON line per measurement.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-2}
NEW=${2:-64}
PYTHON=${PYTHON:-python3}
CKPT=bench/out/qwen05b-random
PROMPTS=bench/out/prompts32x32.jsonl
[ -f "$CKPT/model.safetensors" ] || "$PYTHON" bench/model/make_checkpoint.py "$CKPT"
if [ ! -f "$PROMPTS" ]; then
  "$PYTHON" - "$PROMPTS" <<'PY'
import json, random, sys
random.seed(1)
with open(sys.argv[1], "w") as f:
    for _ in range(32):
        f.write(json.dumps({"ids": [random.randrange(1000, 150000) for _ in range(32)]}) + "\n")
PY
fi
# The dev profile compiles dependencies and `model` at opt-level 3 (Cargo.toml).
cargo build -p model --example decode_speed 2>&1 | tail -1
BIN=${CARGO_TARGET_DIR:-target}/debug/examples/decode_speed
echo "# $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/') threads=$THREADS new=$NEW"
for BATCH in 1 32; do
  for ENGINE in ${ENGINES:-cpu burn}; do
    SELFINSTRUCT_ENGINE=$ENGINE RAYON_NUM_THREADS=$THREADS "$BIN" "$CKPT" "$PROMPTS" "$BATCH" "$NEW"
  done
  OMP_NUM_THREADS=$THREADS "$PYTHON" bench/model/hf_decode.py "$CKPT" "$PROMPTS" \
    --batch "$BATCH" --new "$NEW" --threads "$THREADS"
done
