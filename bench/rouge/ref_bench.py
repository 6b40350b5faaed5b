"""Reference side of the ROUGE-L benchmark: Python rouge_score 0.1.2, single core.

    ref_bench.py make-pairs CORPUS N SEED > pairs.jsonl
        N pairs from a corpus (JSONL {"instruction"} or JSON list): half an instruction and a
        perturbed copy (near-duplicate), half two random instructions.
    ref_bench.py pairs PAIRS.jsonl [MIN_SECS]
        Times RougeScorer(["rougeL"]).score(target, prediction) over every pair, repeated for at
        least MIN_SECS; prints pairs/s and the in-order sum of F (the Rust side prints the same
        sum, which must be equal bit for bit).
    ref_bench.py dedup CORPUS SAMPLE [RUST_DECISIONS.jsonl]
        The Stanford Alpaca loop, brute force, on the first SAMPLE instructions: each tokenized
        once with the scorer's tokenizer, scored with rouge_scorer._score_lcs against every kept
        one, max/argsort top-10/mean with numpy as Alpaca does, kept when max <= 0.7. Prints the
        time per comparison. With the Rust decisions file of the whole corpus, checks that its
        first SAMPLE decisions and max F are identical (greedy decisions on a prefix depend only
        on that prefix).
"""

import json
import random
import sys
import time

import numpy as np
from rouge_score import rouge_scorer

sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
from gen_instructions import perturb  # noqa: E402


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.lstrip().startswith("["):
        return [r["instruction"] for r in json.loads(text)]
    return [json.loads(line)["instruction"] for line in text.splitlines() if line.strip()]


def make_pairs(path, n, seed):
    rng = random.Random(seed)
    corpus = read_corpus(path)
    for i in range(n):
        a = rng.choice(corpus)
        b = perturb(rng, a) if i % 2 == 0 else rng.choice(corpus)
        print(json.dumps([a, b], ensure_ascii=False))


def pairs(path, min_secs):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    passes, start, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        total = sum(scorer.score(r[0], r[1])["rougeL"].fmeasure for r in rows)
        passes += 1
        secs = time.perf_counter() - start
        if secs >= min_secs:
            break
    cpu = time.process_time() - cpu0
    done = passes * len(rows)
    print(f"pairs: {len(rows)}")
    print(f"ref_pairs_per_sec: {done / secs:.0f}")
    print(f"ref_pairs_per_cpu_sec: {done / cpu:.0f}")
    print(f"ref_cpu_us_per_pair: {cpu * 1e6 / done:.2f}")
    print(f"ref_us_per_pair: {secs * 1e6 / done:.2f}")
    print(f"sum_f: {float(total)!r}")


def dedup(path, sample, rust_decisions=None):
    corpus = read_corpus(path)[:sample]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept_tokens, rows, comparisons = [], [], 0
    start, cpu0 = time.perf_counter(), time.process_time()
    for text in corpus:
        tokens = scorer._tokenizer.tokenize(text)
        scores = [rouge_scorer._score_lcs(tokens, k).fmeasure for k in kept_tokens]
        comparisons += len(scores)
        if scores:
            max_f = float(max(scores))
            _top = np.argsort(scores)[-10:][::-1]
            _mean = float(np.mean(scores))
        else:
            max_f = 0.0
        kept = max_f <= 0.7
        if kept:
            kept_tokens.append(tokens)
        rows.append((kept, max_f))
    secs = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    print(f"ref_sample: {len(corpus)}")
    print(f"ref_kept: {sum(k for k, _ in rows)}")
    print(f"ref_comparisons: {comparisons}")
    print(f"ref_secs: {secs:.2f}")
    print(f"ref_cpu_secs: {cpu:.2f}")
    print(f"ref_us_per_comparison: {secs * 1e6 / max(comparisons, 1):.3f}")
    print(f"ref_cpu_us_per_comparison: {cpu * 1e6 / max(comparisons, 1):.3f}")
    if rust_decisions:
        with open(rust_decisions, encoding="utf-8") as f:
            rust = [json.loads(line) for _, line in zip(range(len(rows)), f)]
        diff = [i for i, (r, (k, m)) in enumerate(zip(rust, rows)) if r[1] != k or r[2] != m]
        print(f"ref_vs_rust_checked: {len(rust)}")
        print(f"ref_vs_rust_mismatches: {len(diff)}")
        if diff or len(rust) != len(rows):
            sys.exit(f"decisions differ at {diff[:10]}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make-pairs":
        make_pairs(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "pairs":
        pairs(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 3.0)
    elif cmd == "dedup":
        dedup(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        sys.exit(__doc__)
