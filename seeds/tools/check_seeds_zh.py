#!/usr/bin/env python3
"""Validate the Chinese seed pool (seeds/seed_tasks_zh.jsonl).

Stdlib only. Checks:
  * every line is a JSON object with exactly the keys
    id, name, instruction, instances, is_classification (in that order);
  * ids are consecutive: seed_task_zh_0, seed_task_zh_1, ...;
  * names are unique snake_case ASCII;
  * instructions and outputs are non-empty; inputs are strings ("" allowed);
  * classification outputs are a single line (one label);
  * Chinese is written directly (no \\u escapes in the raw line);
  * near-duplicates: character-level ROUGE-L F-measure between every pair of
    instructions must be <= --max-f (default 0.7).

Tokenizer (mirrors the "unicode" ROUGE tokenizer idea): every CJK character
(Han ideographs incl. extensions and compatibility block, kana, Hangul
syllables) is one token; runs of other Unicode letters/digits become one
lowercased token; everything else is a separator.

Usage: python3 seeds/tools/check_seeds_zh.py [path] [--max-f 0.7]
Exit status is non-zero on any violation.
"""
import argparse
import json
import re
import sys
from itertools import combinations
from pathlib import Path

KEYS = ["id", "name", "instruction", "instances", "is_classification"]
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")

CJK_RANGES = (
    (0x3040, 0x30FF),    # Hiragana, Katakana
    (0x3400, 0x4DBF),    # CJK Extension A
    (0x4E00, 0x9FFF),    # CJK Unified Ideographs
    (0xAC00, 0xD7AF),    # Hangul syllables
    (0xF900, 0xFAFF),    # CJK Compatibility Ideographs
    (0x20000, 0x3FFFF),  # CJK Extensions B..H (planes 2-3)
)


def is_cjk(ch):
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in CJK_RANGES)


def tokenize(text):
    tokens, word = [], []
    for ch in text:
        if is_cjk(ch):
            if word:
                tokens.append("".join(word).lower())
                word = []
            tokens.append(ch)
        elif ch.isalnum():
            word.append(ch)
        elif word:
            tokens.append("".join(word).lower())
            word = []
    if word:
        tokens.append("".join(word).lower())
    return tokens


def lcs_len(a, b):
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l_f(a, b):
    if not a or not b:
        return 0.0
    lcs = lcs_len(a, b)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


def main():
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(here / "seed_tasks_zh.jsonl"))
    ap.add_argument("--max-f", type=float, default=0.7)
    ap.add_argument("--worst", type=int, default=5)
    args = ap.parse_args()

    errors = []
    tasks = []
    raw = Path(args.path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        print(f"ERROR: not UTF-8: {e}")
        return 1
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            errors.append(f"line {lineno}: blank line")
            continue
        if "\\u" in line:
            errors.append(f"line {lineno}: contains \\u escape; write characters directly")
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"line {lineno}: invalid JSON: {e}")
            continue
        if not isinstance(obj, dict) or list(obj.keys()) != KEYS:
            errors.append(f"line {lineno}: keys must be exactly {KEYS} in order")
            continue
        tasks.append((lineno, obj))

    names = {}
    n_cls = n_empty = n_inst = 0
    for idx, (lineno, t) in enumerate(tasks):
        where = f"line {lineno}"
        if t["id"] != f"seed_task_zh_{idx}":
            errors.append(f"{where}: id {t['id']!r}, expected 'seed_task_zh_{idx}'")
        name = t["name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            errors.append(f"{where}: name {name!r} is not snake_case")
        elif name in names:
            errors.append(f"{where}: duplicate name {name!r} (first on line {names[name]})")
        else:
            names[name] = lineno
        if not isinstance(t["instruction"], str) or not t["instruction"].strip():
            errors.append(f"{where}: empty instruction")
        if not isinstance(t["is_classification"], bool):
            errors.append(f"{where}: is_classification must be a boolean")
        elif t["is_classification"]:
            n_cls += 1
        insts = t["instances"]
        if not isinstance(insts, list) or not insts:
            errors.append(f"{where}: instances must be a non-empty list")
            continue
        for k, inst in enumerate(insts):
            if not isinstance(inst, dict) or list(inst.keys()) != ["input", "output"]:
                errors.append(f"{where}: instance {k} keys must be ['input', 'output']")
                continue
            if not isinstance(inst["input"], str):
                errors.append(f"{where}: instance {k} input must be a string")
            if not isinstance(inst["output"], str) or not inst["output"].strip():
                errors.append(f"{where}: instance {k} has empty output")
                continue
            if t["is_classification"] is True and "\n" in inst["output"].strip():
                errors.append(f"{where}: classification output must be one label")
            n_inst += 1
        if isinstance(insts[0], dict) and insts[0].get("input", None) == "":
            n_empty += 1

    n = len(tasks)
    toks = [tokenize(t["instruction"]) for _, t in tasks]
    pairs = []
    for i, j in combinations(range(n), 2):
        pairs.append((rouge_l_f(toks[i], toks[j]), i, j))
    pairs.sort(reverse=True)
    for f, i, j in pairs:
        if f > args.max_f:
            errors.append(
                f"near-duplicate instructions (ROUGE-L F={f:.3f} > {args.max_f}): "
                f"{tasks[i][1]['id']} / {tasks[j][1]['id']}")

    print(f"file: {args.path}")
    print(f"tasks: {n} (instances: {n_inst})")
    if n:
        print(f"classification: {n_cls}/{n} = {n_cls / n:.1%}")
        print(f"empty input: {n_empty}/{n} = {n_empty / n:.1%}")
    if pairs:
        print(f"max pairwise ROUGE-L F (char-level, instructions): {pairs[0][0]:.3f}"
              f" (limit {args.max_f})")
        print(f"mean pairwise ROUGE-L F: {sum(p[0] for p in pairs) / len(pairs):.3f}")
        print(f"worst {min(args.worst, len(pairs))} pairs:")
        for f, i, j in pairs[:args.worst]:
            print(f"  {f:.3f}  {tasks[i][1]['id']} <-> {tasks[j][1]['id']}")
            print(f"         {tasks[i][1]['instruction']}")
            print(f"         {tasks[j][1]['instruction']}")
    if errors:
        print(f"{len(errors)} violation(s):")
        for e in errors:
            print(f"  ERROR: {e}")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
