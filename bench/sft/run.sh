#!/usr/bin/env bash
# SFT speed, selfinstruct (burn, flex, f32) vs transformers + PEFT (CPU, f32), on the same model
# and the same tokenized examples, in one invocation.
#
#   MODEL=path/to/SmolLM2-135M-Instruct.Q4_1.gguf bench/sft/run.sh [THREADS] [STEPS] [lora|full]
#
# Our `sft` writes the tokenized examples it trains on (--write-examples); the reference reads
# that file. Both take steps of about 1024 tokens: ours by token budget (micro-batch = step),
# the reference by a batch size chosen to match the mean example length. Both exclude model
# loading and the first (warm-up) step from tokens/s. Needs $PYTHON (default python3) with
# torch, transformers, peft, gguf and pyarrow. Prints one JSON line per trainer.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=${1:-2}
STEPS=${2:-6}
MODE=${3:-lora}
PYTHON=${PYTHON:-python3}
: "${MODEL:?set MODEL to a checkpoint folder or .gguf file}"
OUT=bench/out/sft
mkdir -p "$OUT"
cargo build -p pipeline 2>&1 | tail -1
BIN=${CARGO_TARGET_DIR:-target}/debug/selfinstruct
case "$MODE" in
  lora) OURS=(--lora-rank 8 --lora-alpha 16 --lr 2e-4); REF=(--lora-rank 8 --lora-alpha 16 --lora-dropout 0 --lr 2e-4) ;;
  full) OURS=(--full --lr 2e-5); REF=(--full --lr 2e-5) ;;
  *) echo "mode is lora or full" >&2; exit 2 ;;
esac
echo "# $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/') threads=$THREADS steps=$STEPS mode=$MODE"
/usr/bin/time -f '%M' -o "$OUT/ours.rss" env RAYON_NUM_THREADS="$THREADS" "$BIN" sft \
  --data seeds/seed_tasks.jsonl --model "$MODEL" --out "$OUT/ours-$MODE" --force \
  --max-steps "$STEPS" --heldout 0 --batch-tokens 1024 --micro-batch-tokens 1024 \
  --warmup-ratio 0 --checkpoint-every 0 --write-examples "$OUT/examples.jsonl" "${OURS[@]}" >/dev/null
"$PYTHON" - "$OUT/ours-$MODE/train_metrics.parquet" "$OUT/ours.rss" <<'PY'
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).to_pylist()[1:]  # the first step is the warm-up, as in hf_sft.py
tokens = sum(r["tokens"] for r in t)
trained = sum(r["trained_tokens"] for r in t)
seconds = sum(r["seconds"] for r in t)
rss = int(open(sys.argv[2]).read().split()[-1]) / 1024
print(json.dumps({"trainer": "selfinstruct", "steps_timed": len(t), "tokens": tokens,
                  "trained_tokens": trained, "seconds": round(seconds, 2),
                  "tokens_per_s": round(tokens / seconds, 1),
                  "trained_tokens_per_s": round(trained / seconds, 1),
                  "peak_rss_mb": round(rss), "losses": [round(r["loss"], 4) for r in t]}))
PY
BATCH=$("$PYTHON" -c "
import json,sys
n=[len(json.loads(l)['input_ids']) for l in open('$OUT/examples.jsonl')]
print(max(1, round(1024 / (sum(n) / len(n)))))")
OMP_NUM_THREADS=$THREADS "$PYTHON" bench/sft/hf_sft.py --model "$MODEL" --data "$OUT/examples.jsonl" \
  --steps "$STEPS" --batch-size "$BATCH" --warmup-steps 1 --threads "$THREADS" "${REF[@]}" | tail -1
