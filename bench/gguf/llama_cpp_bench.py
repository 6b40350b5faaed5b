"""llama.cpp side of the GGUF speed benchmark (llama-cpp-python, CPU): the same token-id prompts
as selfinstruct, one after another (llama-cpp-python runs one sequence at a time), greedy, EOS
ignored, `--new` tokens each. Also writes the prompts file when asked (`--make-prompts N`):
chat prompts from the seed instructions in the default model's ChatML format, tokenized by
llama.cpp with special tokens parsed.

    python bench/gguf/llama_cpp_bench.py MODEL.gguf PROMPTS.jsonl --make-prompts 32
    python bench/gguf/llama_cpp_bench.py MODEL.gguf PROMPTS.jsonl --new 128 --threads 2
    python bench/gguf/llama_cpp_bench.py MODEL.gguf PROMPTS.jsonl --new 128 --threads 2 --parallel

`--parallel` decodes all prompts together as llama.cpp's own parallel/batched examples do: one
context with a sequence per prompt (`n_seq_max`), every prompt's tokens prefilled in one batch,
then one batch of one token per sequence per step (llama-cpp-python's low-level API).

Prints one JSON line: prefill tokens/s (prompt tokens / prompt-eval time), batch-1 decode
tokens/s (generated tokens / decode time) and the aggregate (all generated tokens / wall time of
the whole job, prefill included), peak RSS.
"""

import argparse
import json
import os
import resource
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompts")
    ap.add_argument("--make-prompts", type=int, default=0)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", action="store_true")
    args = ap.parse_args()
    if args.parallel:
        return parallel(args)
    llm = Llama(model_path=args.model, n_ctx=1024, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=512, logits_all=False, verbose=False)
    if args.make_prompts:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
        seeds = [json.loads(l)["instruction"] for l in open(os.path.join(root, "seeds", "seed_tasks.jsonl")) if l.strip()]
        with open(args.prompts, "w") as f:
            for instr in seeds[: args.make_prompts]:
                text = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{instr}<|im_end|>\n"
                        "<|im_start|>assistant\n")
                f.write(json.dumps({"ids": llm.tokenize(text.encode(), add_bos=False, special=True)}) + "\n")
        return
    rows = [json.loads(l)["ids"] for l in open(args.prompts) if l.strip()]
    prefill_s = decode_s = 0.0
    prompt_tokens = generated = 0
    start = time.perf_counter()
    for ids in rows:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        for _ in range(args.new):
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([tok])
        t2 = time.perf_counter()
        prefill_s += t1 - t0
        decode_s += t2 - t1
        prompt_tokens += len(ids)
        generated += args.new
    wall = time.perf_counter() - start
    print(json.dumps({
        "tool": "llama.cpp (llama-cpp-python %s)" % llama_cpp.__version__, "threads": args.threads,
        "prompts": len(rows), "prompt_tokens": prompt_tokens, "generated_tokens": generated,
        "prefill_tok_s": round(prompt_tokens / prefill_s, 1),
        "decode_tok_s_batch1": round(generated / decode_s, 1),
        "aggregate_tok_s": round(generated / wall, 1), "wall_s": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


def parallel(args):
    rows = [json.loads(l)["ids"] for l in open(args.prompts) if l.strip()]
    n = len(rows)
    llm = Llama(model_path=args.model, n_ctx=16, verbose=False, vocab_only=False)
    params = llama_cpp.llama_context_default_params()
    total = sum(len(r) for r in rows) + n * args.new
    params.n_ctx = total + 64
    params.n_batch = max(512, sum(len(r) for r in rows))
    params.n_ubatch = 512
    params.n_seq_max = n
    params.n_threads = args.threads
    params.n_threads_batch = args.threads
    params.kv_unified = True
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm.model))
    batch = llama_cpp.llama_batch_init(params.n_batch, 0, n)

    def submit(entries):
        # entries: (token, pos, seq, want_logits)
        batch.n_tokens = len(entries)
        for i, (tok, pos, seq, want) in enumerate(entries):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = want
        if llama_cpp.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")

    def argmax(i):
        ptr = llama_cpp.llama_get_logits_ith(ctx, i)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(vocab,))))

    start = time.perf_counter()
    entries = [(tok, p, s, p == len(ids) - 1) for s, ids in enumerate(rows) for p, tok in enumerate(ids)]
    # Prefill in batches of n_batch tokens; the logits of each prompt's last token are kept.
    first = {}
    for lo in range(0, len(entries), params.n_batch):
        chunk = entries[lo:lo + params.n_batch]
        submit(chunk)
        for i, (_, _, s, want) in enumerate(chunk):
            if want:
                first[s] = argmax(i)
    t1 = time.perf_counter()
    toks = [first[s] for s in range(n)]
    lens = [len(r) for r in rows]
    for step in range(args.new - 1):
        submit([(toks[s], lens[s] + step, s, True) for s in range(n)])
        toks = [argmax(s) for s in range(n)]
    wall = time.perf_counter() - start
    generated = n * args.new
    print(json.dumps({
        "tool": "llama.cpp parallel (llama-cpp-python %s)" % llama_cpp.__version__,
        "threads": args.threads, "prompts": n, "prompt_tokens": sum(lens),
        "generated_tokens": generated, "prefill_tok_s": round(sum(lens) / (t1 - start), 1),
        "aggregate_tok_s": round(generated / wall, 1), "wall_s": round(wall, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))
    llama_cpp.llama_batch_free(batch)
    llama_cpp.llama_free(ctx)


if __name__ == "__main__":
    main()
