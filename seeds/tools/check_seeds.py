#!/usr/bin/env python3
"""Validate a Self-Instruct seed pool (JSON Lines).

Usage:
    python3 seeds/tools/check_seeds.py seeds/seed_tasks.jsonl [--max-rouge 0.7]

Requires the `rouge-score` package (pip install rouge-score); everything else
is the standard library.

Checks (any failure makes the exit status non-zero):
  * every line is a JSON object with exactly the keys
    id, name, instruction, instances, is_classification (in that order);
  * ids are seed_task_0 .. seed_task_N, consecutive, in file order;
  * names are unique snake_case strings;
  * instruction is a non-empty string of 4 to 150 words;
  * instances is a non-empty list of {"input": str, "output": str}
    objects with a non-empty output; is_classification is a boolean;
  * the instruction contains none of the Self-Instruct blacklist words
    (whole words, case-insensitive), does not start with "Write a program",
    does not start with punctuation or a non-ASCII character, and (unless
    --allow-non-ascii) is pure ASCII;
  * the highest pairwise ROUGE-L F-measure between instructions is at most
    --max-rouge (default 0.7).

It prints the task count, the classification share, the empty-input share,
the ten most frequent first words, and the maximum pairwise ROUGE-L with
the worst pairs.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import string
import sys

EXPECTED_KEYS = ["id", "name", "instruction", "instances", "is_classification"]
INSTANCE_KEYS = ["input", "output"]

# The keyword blacklist used by the Self-Instruct generation filter.
BLACKLIST = [
    "image", "images", "graph", "graphs", "picture", "pictures", "file",
    "files", "map", "maps", "draw", "plot", "go to", "video", "audio",
    "music", "flowchart", "diagram",
]
BLACKLIST_RES = [
    (word, re.compile(r"\b" + re.escape(word) + r"\b", re.IGNORECASE))
    for word in BLACKLIST
]
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


class CharTokenizer:
    """Whitespace words for ASCII text, single characters for CJK text."""

    _token_re = re.compile(r"[a-z0-9]+|[^\sa-z0-9" + re.escape(string.punctuation) + r"]")

    def tokenize(self, text: str) -> list[str]:
        return self._token_re.findall(text.lower())


def first_word(instruction: str) -> str:
    words = instruction.split()
    if not words:
        return ""
    return words[0].strip(string.punctuation).lower()


def check_task(lineno: int, task: object, expected_id: str, allow_non_ascii: bool,
               errors: list[str]) -> None:
    where = f"line {lineno}"

    def err(msg: str) -> None:
        errors.append(f"{where}: {msg}")

    if not isinstance(task, dict):
        err("not a JSON object")
        return
    keys = list(task.keys())
    if keys != EXPECTED_KEYS:
        err(f"keys {keys} != {EXPECTED_KEYS}")
    if task.get("id") != expected_id:
        err(f"id {task.get('id')!r}, expected {expected_id!r}")
    name = task.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        err(f"name {name!r} is not snake_case")
    if not isinstance(task.get("is_classification"), bool):
        err("is_classification is not a boolean")

    instr = task.get("instruction")
    if not isinstance(instr, str) or not instr.strip():
        err("instruction missing or empty")
    else:
        if instr != instr.strip():
            err("instruction has leading/trailing whitespace")
        n_words = len(instr.split())
        if n_words <= 3 or n_words > 150:
            err(f"instruction has {n_words} words (need 4-150)")
        for word, rx in BLACKLIST_RES:
            if rx.search(instr):
                err(f"instruction contains blacklisted word {word!r}")
        if instr.startswith("Write a program"):
            err("instruction starts with 'Write a program'")
        if instr[0] in string.punctuation:
            err("instruction starts with punctuation")
        if not instr[0].isascii():
            err("instruction starts with a non-ASCII character")
        if not allow_non_ascii and not instr.isascii():
            bad = sorted({c for c in instr if not c.isascii()})
            err(f"instruction contains non-ASCII characters {bad}")

    instances = task.get("instances")
    if not isinstance(instances, list) or not instances:
        err("instances missing or empty")
        return
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict) or list(inst.keys()) != INSTANCE_KEYS:
            err(f"instance {i} is not an object with keys {INSTANCE_KEYS}")
            continue
        if not isinstance(inst["input"], str):
            err(f"instance {i} input is not a string")
        if not isinstance(inst["output"], str) or not inst["output"].strip():
            err(f"instance {i} output missing or empty")


def max_pairwise_rouge(instructions: list[str], tokenizer):
    """All pairs as (fmeasure, i, j), highest first."""
    from rouge_score import rouge_scorer

    if tokenizer is None:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    else:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=tokenizer)
    pairs = []
    for i in range(len(instructions)):
        for j in range(i + 1, len(instructions)):
            f = scorer.score(instructions[i], instructions[j])["rougeL"].fmeasure
            pairs.append((f, i, j))
    pairs.sort(reverse=True)
    return pairs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("path", nargs="?", default="seeds/seed_tasks.jsonl")
    ap.add_argument("--max-rouge", type=float, default=0.7,
                    help="fail if any pair of instructions exceeds this ROUGE-L F (default 0.7)")
    ap.add_argument("--worst", type=int, default=5, help="how many worst pairs to print")
    ap.add_argument("--allow-non-ascii", action="store_true",
                    help="allow non-ASCII characters inside instructions (e.g. a Chinese pool)")
    ap.add_argument("--char-tokens", action="store_true",
                    help="tokenize CJK text per character for ROUGE-L (the default "
                         "rouge_score tokenizer drops non-ASCII text)")
    ap.add_argument("--max-first-word-share", type=float, default=None,
                    help="optionally fail if one first word starts more than this share")
    args = ap.parse_args()

    errors: list[str] = []
    tasks: list[dict] = []
    with open(args.path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                errors.append(f"line {lineno}: blank line")
                continue
            try:
                task = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"line {lineno}: invalid JSON ({e})")
                continue
            check_task(lineno, task, f"seed_task_{len(tasks)}", args.allow_non_ascii, errors)
            tasks.append(task if isinstance(task, dict) else {})

    names = collections.Counter(t.get("name") for t in tasks)
    for name, n in names.items():
        if n > 1:
            errors.append(f"name {name!r} used {n} times")
    instrs = [t.get("instruction") for t in tasks]
    dup = [s for s, n in collections.Counter(instrs).items() if n > 1]
    for s in dup:
        errors.append(f"duplicate instruction {s!r}")

    n = len(tasks)
    n_cls = sum(1 for t in tasks if t.get("is_classification") is True)
    n_empty = sum(
        1 for t in tasks
        if isinstance(t.get("instances"), list) and t["instances"]
        and isinstance(t["instances"][0], dict) and t["instances"][0].get("input") == ""
    )
    n_inst = sum(len(t.get("instances") or []) for t in tasks)
    print(f"file:                 {args.path}")
    print(f"tasks:                {n}  (instances: {n_inst})")
    if n:
        print(f"classification:       {n_cls} ({n_cls / n:.1%})")
        print(f"empty input:          {n_empty} ({n_empty / n:.1%})")
        print(f"other (with input):   {n - n_empty} ({(n - n_empty) / n:.1%})")
        lengths = [len(s.split()) for s in instrs if isinstance(s, str)]
        if lengths:
            print(f"instruction words:    min {min(lengths)}, max {max(lengths)}, "
                  f"mean {sum(lengths) / len(lengths):.1f}")

    firsts = collections.Counter(first_word(s) for s in instrs if isinstance(s, str))
    print("top first words:")
    for word, c in firsts.most_common(10):
        print(f"  {word:<14} {c:>4}  ({c / max(n, 1):.1%})")
    if args.max_first_word_share is not None and n:
        for word, c in firsts.items():
            if c / n > args.max_first_word_share:
                errors.append(f"first word {word!r} starts {c / n:.1%} of instructions")

    valid = [(k, s) for k, s in enumerate(instrs) if isinstance(s, str) and s]
    if len(valid) >= 2:
        tok = CharTokenizer() if args.char_tokens else None
        texts = [s for _, s in valid]
        worst = max_pairwise_rouge(texts, tok)
        top = worst[0][0]
        mean = sum(f for f, _, _ in worst) / len(worst)
        print(f"max pairwise ROUGE-L: {top:.4f}  (limit {args.max_rouge})")
        print(f"mean pairwise ROUGE-L: {mean:.4f}  ({len(worst)} pairs)")
        print(f"worst {len(worst[:args.worst])} pairs:")
        for f, i, j in worst[:args.worst]:
            print(f"  {f:.4f}  seed_task_{valid[i][0]}: {texts[i]}")
            print(f"          seed_task_{valid[j][0]}: {texts[j]}")
        over = [(f, i, j) for f, i, j in worst if f > args.max_rouge]
        for f, i, j in over:
            errors.append(f"ROUGE-L {f:.4f} > {args.max_rouge} between "
                          f"seed_task_{valid[i][0]} and seed_task_{valid[j][0]}")

    if errors:
        print(f"\n{len(errors)} problem(s):", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
