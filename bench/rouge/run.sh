#!/usr/bin/env bash
# ROUGE-L benchmark: Python rouge_score (the reference) and the filters crate, same data, one run.
#
#   bench/rouge/run.sh                # from anywhere; figures go to stdout and $WORK/summary.txt
#
# Environment: VENV (default bench/.venv-rouge; created with rouge-score==0.1.2 if missing),
# WORK (scratch folder, default /tmp/rouge-bench), N (synthetic corpus size, 50000),
# THREADS (rayon threads for the dedup, 2), SAMPLE (instructions in the reference's dedup
# sample, 1500), VERIFY (brute-force re-checks of the decisions in Rust: "all" (default) or a count),
# ALPACA (path of alpaca_5000.json; used when present), CARGO_TARGET_DIR (as cargo).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${VENV:-$ROOT/bench/.venv-rouge}
WORK=${WORK:-/tmp/rouge-bench}
N=${N:-50000}
THREADS=${THREADS:-2}
SAMPLE=${SAMPLE:-1500}
VERIFY=${VERIFY:-all}
ALPACA=${ALPACA:-$ROOT/../shared/data/alpaca_5000.json}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"
SUMMARY=$WORK/summary.txt
: > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q rouge-score==0.1.2
fi
PY=$VENV/bin/python
(cd "$ROOT" && cargo build -q --release -p filters --example rouge_bench)
BIN=$TARGET/release/examples/rouge_bench

say "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores; rustc $(rustc --version | cut -d' ' -f2); $($PY --version); rouge-score $($PY -c 'import importlib.metadata as m; print(m.version("rouge-score"))')"
say "# load before: $(uptime | sed 's/.*load average/load average/')"

# Corpora: the synthetic generator always, the Alpaca sample when present.
python3 "$HERE/gen_instructions.py" "$N" 1 > "$WORK/synth.jsonl"
CORPORA="synth"
if [ -f "$ALPACA" ]; then
    python3 -c 'import json,sys; [print(json.dumps({"instruction": r["instruction"]}, ensure_ascii=False)) for r in json.load(open(sys.argv[1]))]' "$ALPACA" > "$WORK/alpaca.jsonl"
    CORPORA="alpaca synth"
fi

# (a) Per-pair scoring, single thread on both sides.
for c in $CORPORA; do
    "$PY" "$HERE/ref_bench.py" make-pairs "$WORK/$c.jsonl" 20000 5 > "$WORK/pairs-$c.jsonl"
    say "## pairs ($c corpus, 20000 pairs: half near-duplicates, half random)"
    "$PY" "$HERE/ref_bench.py" pairs "$WORK/pairs-$c.jsonl" 5 | tee -a "$SUMMARY"
    RAYON_NUM_THREADS=1 "$BIN" pairs "$WORK/pairs-$c.jsonl" --min-secs 3 | tee -a "$SUMMARY"
done

# (b) Insert-time dedup with the index, THREADS threads, max RSS from /usr/bin/time.
for c in $CORPORA; do
    say "## dedup ($c corpus), RAYON_NUM_THREADS=$THREADS"
    RAYON_NUM_THREADS=$THREADS /usr/bin/time -f "max_rss_kb: %M
wall_secs: %e
user_secs: %U" "$BIN" dedup "$WORK/$c.jsonl" --out "$WORK/decisions-$c.jsonl" 2>&1 | tee -a "$SUMMARY"
    say "## brute-force check of the Rust decisions ($c), in Rust: $VERIFY candidates against every instruction kept before each"
    RAYON_NUM_THREADS=$THREADS "$BIN" dedup "$WORK/$c.jsonl" --verify "$VERIFY" | grep -E "verif" | tee -a "$SUMMARY"
    say "## reference: Alpaca loop in Python on the first $SAMPLE instructions ($c), compared with the Rust decisions"
    "$PY" "$HERE/ref_bench.py" dedup "$WORK/$c.jsonl" "$SAMPLE" "$WORK/decisions-$c.jsonl" | tee "$WORK/ref-$c.txt" | tee -a "$SUMMARY"
    # Extrapolation: the comparisons the brute force needs on the whole corpus (counted from the
    # decisions) times the reference's measured time per comparison.
    comps=$(grep '^brute_force_comparisons:' "$SUMMARY" | tail -1 | cut -d' ' -f2)
    per=$(grep '^ref_us_per_comparison:' "$WORK/ref-$c.txt" | cut -d' ' -f2)
    cpu=$(grep '^ref_cpu_us_per_comparison:' "$WORK/ref-$c.txt" | cut -d' ' -f2)
    say "ref_extrapolated_wall_secs_single_core: $(python3 -c "print(round($comps * $per / 1e6, 1))") (= $comps comparisons x $per us wall)"
    say "ref_extrapolated_cpu_secs_single_core: $(python3 -c "print(round($comps * $cpu / 1e6, 1))") (= $comps comparisons x $cpu us CPU)"
done
say "# load after: $(uptime | sed 's/.*load average/load average/')"
echo "summary: $SUMMARY"
