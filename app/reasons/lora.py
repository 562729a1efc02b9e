"""LoRA fine-tuning of the reason LM on (prompt, reason) examples: loss on the reason tokens
only (the prompt is masked), batches padded to their own longest sequence, on CUDA when present.

Knows nothing of shoppers or databases (app/reasons/finetune.py builds the corpus), so the same
code trains on a machine that has only the model and the examples. The adapter (a few MB, bf16)
and its manifest are saved under <models>/reason_lm/<version>/.
"""

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from app.reasons.local_lm import MANIFEST, chat, compute_dtype, device, load_base

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Example:
    prompt: str  # the user turn (prompt.render)
    target: str  # the reason, with slots, as the model should write it


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    learning_rate: float = 1e-3
    batch_size: int = 16
    epochs: int = 1
    warmup_steps: int = 10
    seed: int = 0


def encode(tokenizer: Any, example: Example) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels that score only the reason (and its end)."""
    prompt_ids = tokenizer(chat(tokenizer, example.prompt), add_special_tokens=False)["input_ids"]
    full = tokenizer(chat(tokenizer, example.prompt, example.target), add_special_tokens=False)
    ids: list[int] = full["input_ids"]
    labels = [-100] * len(prompt_ids) + ids[len(prompt_ids) :]
    return ids, labels


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest row of this batch (right padding; padding is masked out)."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, (row_ids, row_labels) in enumerate(rows):
        ids[n, : len(row_ids)] = torch.tensor(row_ids)
        labels[n, : len(row_labels)] = torch.tensor(row_labels)
        mask[n, : len(row_ids)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def fine_tune(
    base: Path,
    examples: Sequence[Example],
    lora: LoraSettings,
    models_dir: Path,
    about: dict[str, Any],
    on_step: Callable[[int, int, float], None] = lambda step, steps, loss: None,
    start_from: Path | None = None,
) -> Path:
    """Train a LoRA adapter on `base` (an HF directory or a GGUF file); returns its directory.
    `about` goes into the manifest as is (where the corpus came from, the code version).
    `start_from` is an adapter to go on training (new targets need fewer steps from an adapter
    that already writes slots than from the base model)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(lora.seed)
    base_model, tokenizer = load_base(base)
    base_model = base_model.to(device(), dtype=compute_dtype())  # type: ignore[arg-type]
    if start_from is not None:
        model = PeftModel.from_pretrained(base_model, str(start_from), is_trainable=True)
    else:
        model = get_peft_model(
            base_model,
            LoraConfig(
                r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                target_modules=TARGET_MODULES, task_type="CAUSAL_LM",
            ),
        )  # fmt: skip
    encoded = [encode(tokenizer, example) for example in examples]
    order = list(range(len(encoded)))
    steps = lora.epochs * math.ceil(len(encoded) / lora.batch_size)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lora.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min(1.0, (step + 1) / lora.warmup_steps) * max(0.0, 1 - step / steps),
    )
    rng = random.Random(lora.seed)  # noqa: S311 (a seeded shuffle, not a secret)
    model.train()
    started, step, losses = time.perf_counter(), 0, []
    for _ in range(lora.epochs):
        rng.shuffle(order)
        for first in range(0, len(order), lora.batch_size):
            batch = collate(
                [encoded[i] for i in order[first : first + lora.batch_size]],
                tokenizer.pad_token_id,
            )
            loss = model(**{k: v.to(device()) for k, v in batch.items()}).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.detach()))
            on_step(step, steps, losses[-1])
    seconds = time.perf_counter() - started
    created = datetime.now(UTC)
    corpus_hash = hashlib.sha256(
        json.dumps([[e.prompt, e.target] for e in examples]).encode()
    ).hexdigest()
    version = f"{created:%Y%m%d-%H%M%S}-{corpus_hash[:8]}"
    path = models_dir / "reason_lm" / version
    for parameter in trainable:  # trained in fp32; stored in bf16 like the base (half the size)
        parameter.data = parameter.data.to(torch.bfloat16)
    model.save_pretrained(str(path))
    (path / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
    manifest = {
        "version": version,
        "created_at": created.isoformat(),
        "base_model": base.name,
        "device": torch.cuda.get_device_name() if device().type == "cuda" else "cpu",
        "dtype": str(compute_dtype()).removeprefix("torch."),
        "lora": asdict(lora),
        "target_modules": TARGET_MODULES,
        "examples": len(examples),
        "examples_sha256": corpus_hash,
        "started_from": start_from.name if start_from is not None else None,
        **about,
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "loss": {"first_10_mean": _mean(losses[:10]), "last_10_mean": _mean(losses[-10:])},
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def _mean(values: list[float]) -> float:
    return round(sum(values) / max(1, len(values)), 4)


def main() -> None:
    """Train from an exported corpus, on any machine with torch, transformers and peft:

    python -m app train-reasons --export examples.json      # here: needs the database
    python -m app.reasons.lora examples.json --base BASE --models-dir models   # e.g. on a GPU
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("examples", type=Path)
    parser.add_argument("--base", type=Path, required=True, help="HF directory or GGUF file")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--epochs", type=int, default=LoraSettings.epochs)
    parser.add_argument("--seed", type=int, default=LoraSettings.seed)
    args = parser.parse_args()
    corpus = json.loads(args.examples.read_text())
    examples = [Example(e["prompt"], e["target"]) for e in corpus["examples"]]

    def report(step: int, steps: int, loss: float) -> None:
        if step % 25 == 0 or step == steps:
            print(f"step {step}/{steps}: loss {loss:.3f}", flush=True)

    lora = LoraSettings(epochs=args.epochs, seed=args.seed)
    path = fine_tune(args.base, examples, lora, args.models_dir, corpus["about"], report)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
