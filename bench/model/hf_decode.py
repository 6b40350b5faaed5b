"""Reference side of the decode benchmark: transformers on CPU, f32, eager attention, greedy,
EOS ignored. Prompts are the same token-id rows selfinstruct gets (a JSONL of {"ids": [...]}).

    python bench/model/hf_decode.py CHECKPOINT PROMPTS.jsonl --batch 32 --new 64 --threads 2

Prints one JSON line: prefill and decode seconds, decode tokens/s (generated tokens of all rows
after the first / decode time), peak RSS.
"""

import argparse
import json
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("prompts")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(l)["ids"] for l in open(args.prompts) if l.strip()][: args.batch]
    if len(rows) < args.batch or len({len(r) for r in rows}) != 1:
        raise SystemExit("need --batch prompts of equal length")
    model = AutoModelForCausalLM.from_pretrained(
        args.checkpoint, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    ids = torch.tensor(rows, dtype=torch.long)
    with torch.inference_mode():
        # Warm-up (first-call allocations), not timed.
        model.generate(ids[:, :8], max_new_tokens=2, do_sample=False, min_new_tokens=2)
        t0 = time.perf_counter()
        model(ids, use_cache=True)
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = model.generate(
            ids,
            max_new_tokens=args.new,
            min_new_tokens=args.new,
            do_sample=False,
            pad_token_id=0,
        )
        total = time.perf_counter() - t0
    new = out.shape[1] - ids.shape[1]
    decode = max(total - prefill, 1e-9)
    print(
        json.dumps(
            {
                "tool": "transformers",
                "batch": args.batch,
                "prompt_len": ids.shape[1],
                "new_tokens": new,
                "threads": args.threads,
                "prefill_s": round(prefill, 3),
                "prefill_tok_s": round(ids.numel() / prefill, 1),
                "decode_s": round(decode, 3),
                "decode_tok_s": round(args.batch * (new - 1) / decode, 2),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
