"""The evidence behind a recommendation: typed facts computed from the model and the feature
tables, never imagined. Reasons are written from these facts only."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import item_pair, item_popularity, user_feature, user_item_feature
from app.reasons.guide import count
from app.schemas import Fact
from app.serving.catalog import CatalogItem
from app.serving.shoppers import Shopper

# The order facts are worth mentioning in, most personal first.
PRIORITY = ("repurchase", "co_purchase", "anchor", "shared_theme", "popularity", "price")


@dataclass(frozen=True)
class Anchor:
    item: CatalogItem
    contribution: float  # score drop when the item is removed from the shopper's history
    times_bought: int


def money(value: float) -> str:
    return f"£{value:,.2f}"


def _fact(kind: str, text: str, **data: Any) -> Fact:
    return Fact(kind=kind, text=text, data=data)


async def gather(
    conn: AsyncConnection,
    shopper: Shopper | None,
    target: CatalogItem,
    anchors: list[Anchor],
    now: datetime,
) -> list[Fact]:
    facts: list[Fact] = []
    # The target itself is often its own strongest anchor (a repeat): the repurchase fact says it.
    anchors = [a for a in anchors if a.item.item_id != target.item_id]
    for anchor in anchors:
        times = f"{anchor.times_bought} times" if anchor.times_bought != 1 else "once"
        facts.append(
            _fact(
                "anchor", f"You bought {anchor.item.title} {times}.",
                item_id=anchor.item.item_id, title=anchor.item.title,
                times_bought=anchor.times_bought, contribution=round(anchor.contribution, 3),
            )
        )  # fmt: skip
    if anchors:
        facts += await _co_purchase(conn, target, anchors)
        same = [a for a in anchors if a.item.theme and a.item.theme == target.theme]
        if same:
            facts.append(
                _fact(
                    "shared_theme", f"Like {same[0].item.title}, it is in {target.theme}.",
                    theme=target.theme, item_id=same[0].item.item_id, title=same[0].item.title,
                )
            )  # fmt: skip
    if shopper is not None:
        facts += await _repurchase(conn, shopper, target, now)
        facts += await _price(conn, shopper, target)
    facts += await _popularity(conn, shopper, target, now)
    return sorted(facts, key=lambda fact: PRIORITY.index(fact.kind))


async def _co_purchase(
    conn: AsyncConnection, target: CatalogItem, anchors: list[Anchor]
) -> list[Fact]:
    by_id = {a.item.item_id: a.item for a in anchors}
    row = (
        await conn.execute(
            select(
                item_pair.c.item_id, item_pair.c.lift, item_pair.c.confidence, item_pair.c.baskets
            )
            .where(
                item_pair.c.kind == "basket",
                item_pair.c.item_id.in_(by_id),
                item_pair.c.other_item_id == target.item_id,
            )
            .order_by(item_pair.c.lift.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return []
    anchor = by_id[row.item_id]
    share = round(100 * row.confidence)
    return [
        _fact(
            "co_purchase",
            f"{share}% of orders with {anchor.title} also hold {target.title}"
            f" ({row.lift:.1f}x the usual rate).",
            item_id=anchor.item_id, title=anchor.title, lift=round(row.lift, 2),
            confidence=round(row.confidence, 3), baskets=row.baskets,
        )
    ]  # fmt: skip


async def _repurchase(
    conn: AsyncConnection, shopper: Shopper, target: CatalogItem, now: datetime
) -> list[Fact]:
    row = (
        await conn.execute(
            select(
                user_item_feature.c.baskets, user_item_feature.c.last_at,
                user_item_feature.c.median_repurchase_gap_days,
            ).where(
                user_item_feature.c.user_id == shopper.user_id,
                user_item_feature.c.item_id == target.item_id,
            )
        )
    ).first()  # fmt: skip
    if row is None:
        return []
    days_since = max(0, (now - row.last_at).days)
    text = f"You have bought {target.title} in {count(row.baskets, 'order')}"
    # A gap under a day means several orders at once, not a cadence.
    gap = row.median_repurchase_gap_days if (row.median_repurchase_gap_days or 0) >= 1 else None
    if gap is not None:
        text += f", about every {count(round(gap), 'day')}"
    text += f"; the last was {count(days_since, 'day')} ago."
    return [
        _fact(
            "repurchase", text, item_id=target.item_id, orders=row.baskets,
            every_days=None if gap is None else round(gap), days_since=days_since,
        )
    ]  # fmt: skip


async def _price(conn: AsyncConnection, shopper: Shopper, target: CatalogItem) -> list[Fact]:
    if target.price is None:
        return []
    usual = (
        await conn.execute(
            select(user_feature.c.usual_unit_price).where(user_feature.c.user_id == shopper.user_id)
        )
    ).scalar()
    if usual is None or usual <= 0:
        return []
    ratio = target.price / float(usual)
    if ratio < 0.8:
        position = "below"
    elif ratio > 1.25:
        position = "above"
    else:
        position = "close to"
    return [
        _fact(
            "price",
            f"At {money(target.price)} it is {position} your usual {money(float(usual))} an item.",
            price=round(target.price, 2), usual=round(float(usual), 2), position=position,
        )
    ]  # fmt: skip


async def _popularity(
    conn: AsyncConnection, shopper: Shopper | None, target: CatalogItem, now: datetime
) -> list[Fact]:
    country = (shopper.country if shopper else None) or "United Kingdom"
    row = (
        await conn.execute(
            select(item_popularity.c.month, item_popularity.c.rank, item_popularity.c.buyers)
            .where(
                item_popularity.c.country == country,
                item_popularity.c.item_id == target.item_id,
                item_popularity.c.month <= now.date(),
            )
            .order_by(item_popularity.c.month.desc())
            .limit(1)
        )
    ).first()
    if row is None or row.rank > 100:
        return []
    month = datetime(row.month.year, row.month.month, 1, tzinfo=UTC)
    return [
        _fact(
            "popularity",
            f"It was number {row.rank} with shoppers in {country} in {month:%B %Y}.",
            country=country, rank=row.rank, month=f"{month:%B %Y}", buyers=row.buyers,
        )
    ]  # fmt: skip
