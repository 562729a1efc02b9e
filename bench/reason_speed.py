"""Generation throughput of the reason LM's architecture on any device, with only torch and
transformers (so it runs on a lent GPU machine that has neither our database nor our weights).

    python bench/reason_speed.py MODEL_DIR PROMPTS_JSON OUT_MD [--random-weights]

MODEL_DIR holds config.json and the tokenizer (with --random-weights, weights are initialised
from the config: the same architecture and kernels, so the same speed). Every row generates
exactly NEW_TOKENS tokens (min = max), so the figures do not depend on what the weights say.
PROMPTS_JSON: a list of rendered reason prompts (user turns). Reference, same run: batch 1.
"""

import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

NEW_TOKENS = 40  # a typical reason with its end token
BATCHES = (1, 8, 16, 64)
SYSTEM = "You write one short, friendly reason why a shop recommends an item to a shopper."


def main(model_dir: Path, prompts_file: Path, out: Path, random_weights: bool) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if random_weights:
        config = AutoConfig.from_pretrained(model_dir)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    model = model.to(device).eval()
    prompts = json.loads(prompts_file.read_text())
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}],
            add_generation_prompt=True, tokenize=False,
        )
        for p in prompts
    ]  # fmt: skip

    def run(size: int) -> float:
        batch = tokenizer(texts[:size], return_tensors="pt", padding=True).to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    run(1)  # warm-up: kernels, caches
    rows = []
    for size in BATCHES:
        seconds = min(run(size) for _ in range(3))
        rows.append((size, seconds, size / seconds))
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "CPU"
    reference = rows[0][2]
    lines = [
        f"- Device: {name} ({device.type}), torch {torch.__version__}, bf16,"
        f" {'random weights of the same architecture' if random_weights else 'real weights'}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {NEW_TOKENS} new tokens per reason,"
        " greedy; best of 3 runs per batch size",
        "",
        "| batch | seconds per batch | reasons/s | vs batch 1 |",
        "| ---: | ---: | ---: | ---: |",
        *(f"| {b} | {s:.3f} | {r:.1f} | {r / reference:.1f}x |" for b, s, r in rows),
        "",
    ]
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(Path(arguments[0]), Path(arguments[1]), Path(arguments[2]), "--random-weights" in sys.argv)
