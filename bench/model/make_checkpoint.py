"""Write a random-weight checkpoint with the shape of Qwen2.5-0.5B (Qwen2ForCausalLM, tied
embeddings, GQA 14:2, bias on q/k/v) for the decode-speed benchmark. Random weights decode as fast
as trained ones; no hub access is needed.

    python bench/model/make_checkpoint.py OUT_DIR [--dtype bfloat16|float32]
"""

import argparse
import json
import os

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    ap.add_argument("--layers", type=int, default=24)
    args = ap.parse_args()
    # Qwen2.5-0.5B's config.json values.
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=args.layers,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_sliding_window=False,
        sliding_window=32768,
        max_window_layers=args.layers,
        bos_token_id=151643,
        eos_token_id=151643,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(getattr(torch, args.dtype))
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"out": args.out, "params": params, "dtype": args.dtype}))


if __name__ == "__main__":
    main()
