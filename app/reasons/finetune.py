"""The corpus for `python -m app train-reasons`: evidence -> reason pairs from real shoppers.

Real shoppers' top recommendations with the evidence the service computes for them; each target
is the reason-writing guide (app/reasons/guide.py) rendered for that evidence, in the opening
the prompt's style id asks for, with a second fact joined into the same sentence. Shoppers
are split by a hash of their id: one in ten is held out, never trained on, for the reasons
benchmark. Training itself is app/reasons/lora.py.
"""

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.config import Settings
from app.db.engine import create_engine_for_service
from app.db.tables import app_user, interaction, user_feature
from app.lifespan import offline_service
from app.reasons.guide import blend, compose, told
from app.reasons.lora import Example
from app.reasons.prompt import render
from app.reasons.slots import Binding
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
    binding: Binding  # the prompt's slots: the guard reads them, `fill` puts the values in
    target: str  # with slots, as the model should write it


def target_for(facts: list[Fact], style: int, binding: Binding, rng: random.Random) -> str:
    """A guide phrasing whose opening matches the prompt's style id (style % 4), with the
    prompt's slots; when the evidence has a second kind of fact, both in one sentence (a tail
    of the guide's, at random): the template writes them as two sentences, the model learns
    to combine them."""
    facts = told(facts)
    lead = style % 4 + 4 * rng.randrange(2)
    return blend(facts, binding, lead, tail=rng.randrange(6)) or compose(
        facts, binding, lead=lead, follow=None
    )


async def build_pairs(
    settings: Settings,
    shoppers: int,
    per_shopper: int,
    held_out: bool,
    seed: int,
    progress: Callable[[int], None] = lambda _: None,
) -> list[Pair]:
    """(shopper, recommended item) pairs with evidence, from shoppers with 2+ orders, picked at
    random (seeded) on one side of the held-out split: `per_shopper` of their top items and as
    many of their top items not bought before."""
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
            # Both slices a storefront shows: the shopper's top items (mostly their own repeat
            # buys) and items they have not bought before.
            found = await service.top_with_evidence(user, per_shopper)
            found += await service.top_with_evidence(user, per_shopper, exclude_purchased=True)
            for target, facts in found:
                style = style_of(user, target.item_id)
                prompt, binding = render(facts, style)
                reason = target_for(facts, style, binding, rng)
                pairs.append(Pair(user, target.item_id, facts, style, prompt, binding, reason))
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


def corpus_facts(pairs: list[Pair]) -> dict[str, Any]:
    """What the adapter's manifest records about where its examples came from."""
    return {
        "code_version": code_version(),
        "corpus": {
            "pairs": len(pairs),
            "shoppers": len({p.user_id for p in pairs}),
            "source": "real shoppers' top recommendations and top items not bought before,"
            " evidence dated at the data's end",
            "held_out": f"1 shopper in {HELD_OUT_ONE_IN}",
        },
    }


def examples_of(pairs: list[Pair]) -> list[Example]:
    return [Example(p.prompt, p.target) for p in pairs]


def export(pairs: list[Pair], path: Path) -> None:
    """The corpus as JSON, to train elsewhere (python -m app.reasons.lora)."""
    examples = [{"prompt": p.prompt, "target": p.target} for p in pairs]
    path.write_text(json.dumps({"about": corpus_facts(pairs), "examples": examples}, indent=1))
