"""transformers side of the GGUF speed benchmark: the same GGUF loaded by transformers
(dequantised to f32), the same token-id prompts, greedy, EOS ignored, `--new` tokens each, all
prompts as one left-padded batch (`model.generate`), and the first prompt alone (batch 1).

    python bench/gguf/hf_bench.py MODEL.gguf PROMPTS.jsonl --new 128 --threads 2

Prints one JSON line per job: generated tokens / wall time of the whole `generate` call
(prefill included); prefill tokens/s of one separately timed forward over the prompts, and
decode tokens/s = tokens after the first / (generate time - that prefill time); peak RSS.
"""

import argparse
import json
import os
import resource
import time

import torch
from transformers import AutoModelForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(l)["ids"] for l in open(args.prompts) if l.strip()]
    folder, name = os.path.split(os.path.abspath(args.model))
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    pad = 0
    with torch.inference_mode():
        model.generate(torch.tensor([rows[0][:8]]), max_new_tokens=2, do_sample=False, pad_token_id=pad)
        for label, batch in (("batched", rows), ("batch 1", rows[:1])):
            width = max(len(r) for r in batch)
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in batch])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch])
            # Prefill alone (one forward over the prompts), timed as the decode speed's baseline.
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask)
            prefill = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=args.new,
                                 min_new_tokens=args.new, do_sample=False, pad_token_id=pad)
            wall = time.perf_counter() - t0
            generated = (out.shape[1] - width) * len(batch)
            print(json.dumps({
                "tool": "transformers %s (torch %s, f32, %s attention)" % (
                    __import__("transformers").__version__, torch.__version__,
                    model.config._attn_implementation),
                "job": label, "threads": args.threads, "prompts": len(batch),
                "generated_tokens": generated, "aggregate_tok_s": round(generated / wall, 1),
                "prefill_tok_s": round(int(mask.sum()) / prefill, 1),
                # Tokens after the first / (generation - the separately timed prefill).
                "decode_tok_s": round((generated - len(batch)) / max(wall - prefill, 1e-9), 1),
                "wall_s": round(wall, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }), flush=True)


if __name__ == "__main__":
    main()
