#!/usr/bin/env python3
"""Reference side of the SFT speed benchmark: transformers + PEFT on CPU, f32.

Data (the same file our trainer reads): JSON Lines, one example per line,

    {"input_ids": [int, ...], "loss_mask": [0|1, ...]}      (equal lengths)

Loss convention (standard causal-LM shift): the logits at position t predict input_ids[t+1],
and that prediction counts when loss_mask[t+1] is 1. So loss_mask[i] = 1 marks token i as a
target (loss_mask[0] is never used). Here that is `labels[i] = input_ids[i] if loss_mask[i] else
-100`, which transformers shifts internally. The loss of a step is the mean cross-entropy over
all target tokens of the batch (every target token weighs the same, whatever its example).

Batches: `--batch-size` consecutive examples in file order (wrapping around at the end), right-
padded to the longest in the batch; padding is masked out of attention and of the loss.
Optimiser: AdamW (betas 0.9/0.999, eps 1e-8, `--weight-decay`, default 0), gradients clipped to
norm 1.0; the lr of 0-based step s is lr * (s + 1) / W for s < W = `--warmup-steps`, then
lr * (1 + cos(pi * (s - W) / (N - W))) / 2 for N = `--steps` (`--schedule constant`: lr). LoRA (PEFT) on `--targets` with rank `--lora-rank`, alpha
`--lora-alpha`, dropout `--lora-dropout`, or `--full` fine-tuning of every weight.

Timing: model loading and the first step (a warm-up: first-touch allocations, thread pools) are
excluded; `seconds` covers steps 2..N, and `tokens`/`trained_tokens` count those steps only.
`tokens` = non-pad input tokens, `trained_tokens` = target tokens (loss_mask 1). `peak_rss_mb`
is the process's maximum resident set over the whole run (loading a GGUF alone takes GBs);
`train_peak_rss_mb` is the maximum from the first step on (Linux: the high-water mark is reset
through /proc/self/clear_refs after loading; null where that is not possible).

    python bench/sft/hf_sft.py --model DIR_OR_GGUF --data data.jsonl --steps 10 --batch-size 4 \\
        --lora-rank 8 --lora-alpha 16 --threads 2

`--model` is a Hugging Face folder or a .gguf file (loaded by transformers' GGUF reader,
dequantised to f32). Per step it prints one line; at the end one JSON line with the results.
"""
import argparse
import gc
import json
import math
import os
import resource
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="HF checkpoint folder or .gguf file")
    p.add_argument("--data", required=True, help="JSONL of {input_ids, loss_mask}")
    p.add_argument("--steps", type=int, default=10, help="optimiser steps (the first is the untimed warm-up)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                   help="comma-separated module names LoRA adapts")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa", help="transformers attention implementation")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def read_data(path):
    examples = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
                ids, mask = row["input_ids"], row["loss_mask"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                sys.exit(f"{where}: expected {{\"input_ids\": [...], \"loss_mask\": [...]}}: {e}")
            if len(ids) != len(mask) or len(ids) < 2:
                sys.exit(f"{where}: input_ids ({len(ids)}) and loss_mask ({len(mask)}) must have the same length >= 2")
            if any(m not in (0, 1) for m in mask):
                sys.exit(f"{where}: loss_mask must hold only 0 and 1")
            if not any(mask[1:]):
                sys.exit(f"{where}: no target token (loss_mask[1:] is all 0)")
            examples.append((ids, mask))
    if not examples:
        sys.exit(f"{path}: no examples")
    return examples


def load_model(path, attn):
    kwargs = dict(dtype=torch.float32, attn_implementation=attn)
    if path.endswith(".gguf"):
        directory, file = os.path.split(os.path.abspath(path))
        return AutoModelForCausalLM.from_pretrained(directory, gguf_file=file, **kwargs)
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def batches(examples, batch_size, pad_id):
    """Endless batches of consecutive examples, right-padded: (input_ids, attention_mask, labels)."""
    start = 0
    while True:
        rows = [examples[(start + i) % len(examples)] for i in range(batch_size)]
        start = (start + batch_size) % len(examples)
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((batch_size, width), pad_id, dtype=torch.long)
        attention = torch.zeros((batch_size, width), dtype=torch.long)
        labels = torch.full((batch_size, width), -100, dtype=torch.long)
        for r, (ids, mask) in enumerate(rows):
            n = len(ids)
            input_ids[r, :n] = torch.tensor(ids)
            attention[r, :n] = 1
            labels[r, :n] = torch.where(torch.tensor(mask) == 1, torch.tensor(ids), torch.tensor(-100))
        yield input_ids, attention, labels


def reset_peak_rss():
    """Resets the kernel's resident-set high-water mark (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb():
    """VmHWM of /proc/self/status in MiB, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def lr_factor(step, warmup, total, schedule):
    """Multiplier of the peak lr for 0-based `step`."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    examples = read_data(args.data)

    t0 = time.perf_counter()
    model = load_model(args.model, args.attn)
    if args.full:
        mode = "full"
    else:
        from peft import LoraConfig, get_peft_model
        lora = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                          target_modules=args.targets.split(","), bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
        mode = f"lora r={args.lora_rank} alpha={args.lora_alpha} on {args.targets}"
    model.train()
    load_seconds = time.perf_counter() - t0
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, args.warmup_steps, args.steps, args.schedule))
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    print(f"# transformers {transformers.__version__}, torch {torch.__version__}, {args.threads} threads, f32, "
          f"attention {args.attn}; {mode}; trainable {trainable:,} of {total_params:,} parameters; "
          f"{len(examples)} examples, batch {args.batch_size}; load {load_seconds:.1f} s", flush=True)

    gc.collect()
    peak_reset = reset_peak_rss()
    tokens = trained = 0
    timed = 0.0
    warmup_seconds = None
    loss_value = float("nan")
    data = batches(examples, args.batch_size, pad_id)
    for step in range(args.steps):
        input_ids, attention, labels = next(data)
        lr = scheduler.get_last_lr()[0]
        start = time.perf_counter()
        out = model(input_ids=input_ids, attention_mask=attention, labels=labels)
        out.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0).item()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        loss_value = out.loss.item()
        n_tokens = int(attention.sum())
        # Targets: label positions 1.. that are not -100 (position 0 is never predicted).
        n_trained = int((labels[:, 1:] != -100).sum())
        if step == 0:
            warmup_seconds = seconds
        else:
            timed += seconds
            tokens += n_tokens
            trained += n_trained
        print(f"step {step + 1:4d}  loss {loss_value:.4f}  grad_norm {grad_norm:.3f}  "
              f"lr {lr:.2e}  tokens {n_tokens}  trained {n_trained}  "
              f"{seconds:.2f} s{' (warm-up, not timed)' if step == 0 else ''}", flush=True)

    whole_run_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    train_peak = peak_rss_mb() if peak_reset else None
    result = {
        "tool": "transformers+peft" if not args.full else "transformers",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": args.model,
        "mode": "full" if args.full else "lora",
        "lora_rank": None if args.full else args.lora_rank,
        "trainable_params": trainable,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "timed_steps": args.steps - 1,
        "tokens": tokens,
        "trained_tokens": trained,
        "seconds": round(timed, 3),
        "tokens_per_s": round(tokens / timed, 2) if timed > 0 else None,
        "trained_tokens_per_s": round(trained / timed, 2) if timed > 0 else None,
        "warmup_step_seconds": round(warmup_seconds, 3) if warmup_seconds is not None else None,
        "load_seconds": round(load_seconds, 2),
        "final_loss": round(loss_value, 5),
        "peak_rss_mb": round(whole_run_peak, 1),
        "train_peak_rss_mb": round(train_peak, 1) if train_peak is not None else None,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
