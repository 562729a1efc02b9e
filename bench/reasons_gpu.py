"""The reasons benchmark's LM outputs and generation speed, on a lent GPU machine that has
torch, transformers and peft but not our database.

    python -m bench.reasons --export-prompts prompts.json          # here: held-out prompts
    python -m bench.reasons_gpu BASE ADAPTER prompts.json OUT_DIR  # there
    python -m bench.reasons --generations OUT_DIR/generations.json # here: their quality

BASE: the base model (HF directory or GGUF file); ADAPTER: the adapter directory. Writes
OUT_DIR/generations.json (every LM writer's raw output per prompt) and OUT_DIR/reasons_gpu.md
(reasons/s of the fine-tuned model at batch 1 to 64, and the time of one batch, real weights,
real outputs).
"""

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import torch

from app.reasons.local_lm import compute_dtype, device
from bench.reason_generation import lm_writers, speed

MAX_NEW_TOKENS = 64  # the serving cap (RECS_REASON_MAX_NEW_TOKENS)
SIZES = (1, 8, 10, 16, 64)  # 10: the k reasons of one /recommend call


def main(base: Path, adapter: Path, prompts_file: Path, out: Path) -> None:
    exported = json.loads(prompts_file.read_text())
    prompts: list[str] = exported["prompts"]
    few_shot = tuple((p, t) for p, t in exported["few_shot"])
    outputs, tuned = lm_writers(base, adapter, prompts, few_shot, MAX_NEW_TOKENS)
    rates = speed(tuned, prompts, SIZES)
    name = torch.cuda.get_device_name() if device().type == "cuda" else "CPU"
    where = f"{name}, torch {torch.__version__}, {str(compute_dtype()).removeprefix('torch.')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "generations.json").write_text(
        json.dumps(
            {
                "device": where,
                "model": tuned.name,
                "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
                "prompts": prompts,
                "writers": {w: [asdict(g) for g in gs] for w, gs in outputs.items()},
            }
        )
    )
    reference = rates[1]
    lines = [
        "# Reason LM generation speed on a lent GPU",
        "",
        f"- Device: {where}",
        f"- Model: `{tuned.name}` (real weights), greedy, at most {MAX_NEW_TOKENS} new tokens;"
        " each batch stops when its last row ends, as in serving",
        "- Each size is timed over max(1, 16 // size) batches, after a warm-up batch of that size"
        " (a GPU's first batch of a shape also sets up its kernels)",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {len(prompts)} held-out prompts",
        "- Command: `python -m bench.reasons_gpu BASE ADAPTER prompts.json OUT` (see its"
        " docstring for the export and report steps)",
        "",
        "| batch | reasons/s | vs batch 1 | one batch |",
        "| ---: | ---: | ---: | ---: |",
        *(
            f"| {size} | {rate:.1f} | {rate / reference:.1f}x | {size / rate:.2f} s |"
            for size, rate in rates.items()
        ),
        "",
    ]
    (out / "reasons_gpu.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if len(sys.argv) != 5:
        raise SystemExit(__doc__)
    main(*(Path(a) for a in sys.argv[1:]))
