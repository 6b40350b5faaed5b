#!/usr/bin/env python3
"""Sample SFT data for bench/sft/hf_sft.py: seed tasks as chat examples, tokenized.

Each seed instance becomes a two-turn chat (user: the instruction, then a blank line and the
input if there is one; assistant: the output), rendered with the checkpoint's chat template and
tokenized with its tokenizer. One JSON line per example:

    {"input_ids": [int, ...], "loss_mask": [0|1, ...]}

`loss_mask[i]` is 1 when token i is a target of the loss (the model, reading tokens 0..i-1,
is trained to predict it): the assistant's reply and its end-of-turn token. The prompt and the
template's text after the end-of-turn token (a newline in ChatML) are 0.

    python bench/sft/make_data.py --tokenizer DIR_OR_GGUF [--seeds seeds/seed_tasks.jsonl] \\
        [--limit 64] --out /tmp/sft-sample.jsonl

`--tokenizer` is a Hugging Face folder (for the default model, the export of
`selfinstruct export-model --model SmolLM2-135M-Instruct.Q4_1.gguf --out DIR`) or a .gguf
file (transformers' own GGUF tokenizer; for SmolLM2 it splits a run of spaces before a digit
differently from the model's tokenizer.json, which does not matter for a speed benchmark).
"""
import argparse
import json
import os
import sys

from transformers import AutoTokenizer


def load_tokenizer(path):
    if path.endswith(".gguf"):
        directory, file = os.path.split(os.path.abspath(path))
        return AutoTokenizer.from_pretrained(directory, gguf_file=file)
    return AutoTokenizer.from_pretrained(path)


def ids_of(result):
    """apply_chat_template(tokenize=True) returns a list in transformers 4, a mapping in 5."""
    if hasattr(result, "keys"):
        result = result["input_ids"]
    return list(result)


def examples(seeds_path):
    with open(seeds_path) as f:
        for line in f:
            if not line.strip():
                continue
            task = json.loads(line)
            for instance in task["instances"]:
                prompt = task["instruction"]
                if instance.get("input"):
                    prompt += "\n\n" + instance["input"]
                yield prompt, instance["output"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", required=True, help="HF checkpoint folder or .gguf file")
    parser.add_argument("--seeds", default=os.path.join(os.path.dirname(__file__), "../../seeds/seed_tasks.jsonl"))
    parser.add_argument("--limit", type=int, default=64, help="number of examples (default 64)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    tok = load_tokenizer(args.tokenizer)
    end_of_turn = tok.eos_token_id
    written = 0
    with open(args.out, "w") as out:
        for prompt, reply in examples(args.seeds):
            if written == args.limit:
                break
            user = [{"role": "user", "content": prompt}]
            prompt_ids = ids_of(tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True))
            full = ids_of(tok.apply_chat_template(user + [{"role": "assistant", "content": reply}], tokenize=True))
            if full[: len(prompt_ids)] != prompt_ids:
                sys.exit(f"the template does not render the prompt as a prefix of the chat: {prompt!r}")
            # The reply ends at the last end-of-turn token; what the template adds after it is not trained.
            ends = [i for i in range(len(prompt_ids), len(full)) if full[i] == end_of_turn]
            if not ends:
                sys.exit(f"no end-of-turn token ({tok.eos_token!r}) after the prompt: {prompt!r}")
            mask = [1 if len(prompt_ids) <= i <= ends[-1] else 0 for i in range(len(full))]
            out.write(json.dumps({"input_ids": full, "loss_mask": mask}) + "\n")
            written += 1
    print(f"wrote {written} examples to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
