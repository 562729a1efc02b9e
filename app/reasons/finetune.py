"""`python -m app train-reasons`: teach the base LM to verbalise evidence, with LoRA.

Corpus: real shoppers' top recommendations with the evidence the service computes for them;
each target is the reason-writing guide (app/reasons/guide.py) rendered for that evidence, in
the opening the prompt's style id asks for. Shoppers are split by a hash of their id: one in ten
is held out, never trained on, for the reasons benchmark.

Training: LoRA on every projection, loss on the reason tokens only (the prompt is masked),
batches padded to their own longest sequence, bf16 weights (CPU or CUDA). The adapter (a few MB)
and its manifest are saved under models/reason_lm/<version>/.
"""

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from sqlalchemy import func, select

from app.config import Settings
from app.db.engine import create_engine_for_service
from app.db.tables import app_user, interaction, user_feature
from app.lifespan import offline_service
from app.reasons.guide import compose
from app.reasons.local_lm import MANIFEST, chat, device, resolve_model
from app.reasons.prompt import Slots, render
from app.reasons.template import style_of
from app.schemas import Fact
from app.serving.bundle import code_version

HELD_OUT_ONE_IN = 10


def is_held_out(user_id: str) -> bool:
    return int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16) % HELD_OUT_ONE_IN == 0


@dataclass(frozen=True)
class Pair:
    user_id: str
    item_id: int
    facts: list[Fact]
    style: int
    prompt: str
    target: str  # with slots, as the model should write it


def target_for(facts: list[Fact], style: int, rng: random.Random) -> str:
    """A guide phrasing whose opening matches the prompt's style id (style % 4); a second
    sentence whenever the evidence has another kind of fact."""
    slots = Slots.of(facts)
    slot_of = {item_id: slots.slot(item_id) for item_id in slots.by_item}
    return compose(facts, slot_of, lead=style % 4 + 4 * rng.randrange(2), follow=rng.randrange(6))


async def build_pairs(
    settings: Settings,
    shoppers: int,
    per_shopper: int,
    held_out: bool,
    seed: int,
    progress: Callable[[int], None] = lambda _: None,
) -> list[Pair]:
    """(shopper, recommended item) pairs with evidence, from shoppers with 2+ orders, picked at
    random (seeded) on one side of the held-out split."""
    rng = random.Random(seed)  # noqa: S311 (a seeded sample, not a secret)
    as_of = settings.as_of or await data_end(settings)
    async with offline_service(
        settings.model_copy(
            update={
                "reason_writer": "template", "list_cache_ttl_s": 0, "reason_cache_ttl_s": 0,
                "as_of": as_of,
            }
        )
    ) as service:  # fmt: skip
        async with service.engine.connect() as conn:
            rows = await conn.execute(
                select(app_user.c.external_id)
                .join(user_feature, user_feature.c.user_id == app_user.c.id)
                .where(user_feature.c.baskets >= 2)
                .order_by(app_user.c.external_id)
            )
            users = [u for (u,) in rows if is_held_out(u) == held_out]
        rng.shuffle(users)
        pairs = []
        for user in users[:shoppers]:
            for target, facts in await service.top_with_evidence(user, per_shopper):
                style = style_of(user, target.item_id)
                prompt, _ = render(facts, style)
                pairs.append(
                    Pair(user, target.item_id, facts, style, prompt, target_for(facts, style, rng))
                )
            progress(1)
    return pairs


async def data_end(settings: Settings) -> datetime:
    """The day after the last event: "now" for shoppers in historical data (recency facts
    such as "last ordered 12 days ago" must not count from today's date)."""
    engine = create_engine_for_service(settings.database_url)
    try:
        async with engine.connect() as conn:
            last = (await conn.execute(select(func.max(interaction.c.occurred_at)))).scalar()
    finally:
        await engine.dispose()
    return (last or datetime.now(UTC)).replace(hour=0, minute=0, second=0) + timedelta(days=1)


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


TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def encode(tokenizer: Any, pair: Pair) -> tuple[list[int], list[int]]:
    """Token ids of the whole chat and labels that score only the reason (and its end)."""
    prompt_ids = tokenizer(chat(tokenizer, pair.prompt), add_special_tokens=False)["input_ids"]
    full = tokenizer(chat(tokenizer, pair.prompt, pair.target), add_special_tokens=False)
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
    settings: Settings,
    pairs: list[Pair],
    lora: LoraSettings,
    on_step: Callable[[int, int, float], None] = lambda step, steps, loss: None,
) -> Path:
    """Train a LoRA adapter on the pairs; returns its directory under models/reason_lm/."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(lora.seed)
    base = resolve_model(settings.reason_model, settings.models_dir)
    tokenizer = AutoTokenizer.from_pretrained(base)
    base_model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    model = get_peft_model(
        base_model.to(device()),  # type: ignore[arg-type]
        LoraConfig(
            r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
            target_modules=TARGET_MODULES, task_type="CAUSAL_LM",
        ),
    )  # fmt: skip
    encoded = [encode(tokenizer, pair) for pair in pairs]
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
        json.dumps([[p.user_id, p.item_id, p.prompt, p.target] for p in pairs]).encode()
    ).hexdigest()
    version = f"{created:%Y%m%d-%H%M%S}-{corpus_hash[:8]}"
    path = settings.models_dir / "reason_lm" / version
    for parameter in trainable:  # trained in fp32; stored in bf16 like the base (half the size)
        parameter.data = parameter.data.to(torch.bfloat16)
    model.save_pretrained(str(path))
    (path / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
    manifest = {
        "version": version,
        "created_at": created.isoformat(),
        "code_version": code_version(),
        "base_model": base.name,
        "device": str(device()),
        "lora": asdict(lora),
        "target_modules": TARGET_MODULES,
        "corpus": {"pairs": len(pairs), "shoppers": len({p.user_id for p in pairs}),
                   "sha256": corpus_hash, "held_out": f"1 shopper in {HELD_OUT_ONE_IN}"},
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "loss": {"first_10_mean": _mean(losses[:10]), "last_10_mean": _mean(losses[-10:])},
    }  # fmt: skip
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def _mean(values: list[float]) -> float:
    return round(sum(values) / max(1, len(values)), 4)
