"""The evidence behind a recommendation: typed facts computed from the model, the shopper's own
rows and the feature tables, never imagined. Reasons are written from these facts only.

Each fact holds its numbers, the display strings a reason fills in (app/reasons/slots.py) and,
where a shopper would read one into it, its state: the words of a reason are chosen by the
state, never by chance. The definitions, which the independent checker in tests/ and bench/
recomputes from the raw rows:

- an order is one basket: purchase lines sharing an order id (the source's, or the session the
  ingest derived when the source has none);
  counts are orders, never lines; only purchases before "now" count, never cart lines;
- anchor: a history, cart or session item whose removal lowers the target's score, cited only
  when its share of all such drops is at least ANCHOR_MIN_SHARE; it is "bought" with its order
  count, else "in the cart", else "in this visit" (a session item);
- repurchase (the target is one of the shopper's own items): orders, days since the last; a
  cadence only from at least MIN_GAPS gaps of a day or more between orders that agree (the
  upper quartile at most CADENCE_MAX_SPREAD x the lower); its state is one_off (one order),
  repeat (no steady cadence), early, due or overdue (days since / median gap below
  DUE_FROM, up to OVERDUE_AFTER, above);
- co-purchase: the share of orders holding the anchor that also hold the target, and its lift,
  only with lift >= MIN_LIFT over at least item_pair's minimum of baskets and a share that
  rounds to 1% or more;
- popularity: the item's rank by buyers in the latest month up to now, among shoppers of the
  shopper's country (an anonymous session's stated one), or among all shoppers when the
  country is unknown; only within the top
  MAX_RANK and with at least MIN_OTHER_BUYERS buyers besides the shopper;
- price: the item's typical price (the median unit price paid) against the shopper's usual
  price, the quantity-weighted median unit price they paid; below under PRICE_BELOW x, above
  over PRICE_ABOVE x, close in between.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import ALL_SHOPPERS, item_pair, item_popularity
from app.reasons.sanitise import clean
from app.schemas import Fact
from app.serving.catalog import CatalogItem
from app.serving.shoppers import Shopper

# The order facts are worth mentioning in, most personal first.
PRIORITY = ("repurchase", "co_purchase", "anchor", "shared_theme", "popularity", "price")

ANCHOR_MIN_SHARE = 0.1
MIN_GAPS = 2
CADENCE_MAX_SPREAD = 2.0
DUE_FROM, OVERDUE_AFTER = 0.75, 1.5
MIN_LIFT = 1.5
MAX_RANK = 100
TOP_RANK = 10  # "one of the most bought" only this high
MIN_OTHER_BUYERS = 5
PRICE_BELOW, PRICE_ABOVE = 0.8, 1.25
DAY_S = 86_400


@dataclass(frozen=True)
class Locale:
    """How amounts and months are written: the shop's currency (ISO 4217; None: amounts
    without a currency) and language, both formatted by Babel."""

    currency: str | None = None
    language: str = "en"

    def money(self, value: float) -> str:
        if self.currency is None:
            return format_decimal(value, format="#,##0.00", locale=self.language)
        return format_currency(value, self.currency, locale=self.language).replace("\xa0", " ")

    def month(self, day: date) -> str:
        return format_date(day, "LLLL y", locale=self.language)


@dataclass(frozen=True)
class Anchor:
    item: CatalogItem
    contribution: float  # score drop when the item is removed from the shopper's history
    share: float  # of all the positive drops for this target
    in_cart: bool
    in_session: bool = False  # one of an anonymous or current session's items


@dataclass(frozen=True)
class Orders:
    """A shopper's orders of one item before now: each order's time (unix s), oldest first."""

    times: list[int]

    @property
    def count(self) -> int:
        return len(self.times)


def count_phrase(n: int) -> str:
    """How a reason states an order count: "once", "in 3 orders"."""
    return "once" if n == 1 else f"in {n} orders"


def days_phrase(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _fact(kind: str, text: str, **data: Any) -> Fact:
    return Fact(kind=kind, text=text, data=data)


# The shopper's orders of the given items before now, each timed at the order's first line:
# one row per (item, order), oldest first.
ORDERS_SQL = text(
    """
    WITH line AS (
        SELECT item_id, occurred_at,
               coalesce(order_id, 'line:' || id) AS basket
        FROM interaction
        WHERE user_id = :user_id AND event_type = 'purchase' AND occurred_at < :now
    ), basket AS (
        SELECT basket, min(occurred_at) AS at FROM line GROUP BY basket
    )
    SELECT DISTINCT l.item_id, extract(epoch FROM b.at)::bigint AS at
    FROM line l JOIN basket b USING (basket)
    WHERE l.item_id = ANY(:item_ids)
    ORDER BY 1, 2
    """
)
# Units bought at each unit price before now: the usual price is their weighted median.
PAID_SQL = text(
    """
    SELECT unit_price, sum(quantity) AS units
    FROM interaction
    WHERE user_id = :user_id AND event_type = 'purchase' AND occurred_at < :now
      AND unit_price IS NOT NULL AND unit_price > 0
    GROUP BY unit_price
    ORDER BY unit_price
    """
)


async def orders_of(
    conn: AsyncConnection, shopper: Shopper, item_ids: set[int], now: datetime
) -> dict[int, Orders]:
    if not item_ids:
        return {}
    rows = await conn.execute(
        ORDERS_SQL, {"user_id": shopper.user_id, "now": now, "item_ids": sorted(item_ids)}
    )
    found: dict[int, list[int]] = {}
    for item_id, at in rows:
        found.setdefault(item_id, []).append(int(at))
    return {item_id: Orders(times) for item_id, times in found.items()}


async def usual_price(conn: AsyncConnection, shopper: Shopper, now: datetime) -> float | None:
    rows = (await conn.execute(PAID_SQL, {"user_id": shopper.user_id, "now": now})).all()
    if not rows:
        return None
    units = np.cumsum([int(u) for _, u in rows])
    middle = int(np.searchsorted(units, units[-1] / 2))  # first price reaching half the units
    return float(rows[middle][0])


async def gather(
    conn: AsyncConnection,
    shopper: Shopper | None,
    country: str | None,
    target: CatalogItem,
    anchors: list[Anchor],
    now: datetime,
    locale: Locale,
    orders: dict[int, Orders],
    usual: float | None,
) -> list[Fact]:
    """The facts for one target, in priority order. `country`: the shopper's (or an anonymous
    session's stated one), None when unknown; `orders` must cover the target and every anchor
    (orders_of); `usual` is the shopper's usual price (usual_price)."""
    facts: list[Fact] = []
    # The target itself is often its own strongest anchor (a repeat): the repurchase fact says it.
    cited = []
    for anchor in anchors:
        bought = orders.get(anchor.item.item_id, Orders([])).count
        if anchor.item.item_id == target.item_id or anchor.share < ANCHOR_MIN_SHARE:
            continue
        if bought == 0 and not anchor.in_cart and not anchor.in_session:
            continue  # neither bought nor in the cart or session: nothing true to say of it
        cited.append(anchor)
        title = clean(anchor.item.title)
        if bought:
            text = f"You bought {title} {count_phrase(bought)}."
        elif anchor.in_cart:
            text = f"{title} is in your cart."
        else:
            text = f"{title} is in this visit."
        facts.append(
            _fact(
                "anchor", text, item_id=anchor.item.item_id, title=title, orders=bought,
                in_cart=anchor.in_cart and not bought,
                in_session=anchor.in_session and not bought and not anchor.in_cart,
                contribution=round(anchor.contribution, 3), share=round(anchor.share, 3),
            )
        )  # fmt: skip
    if cited:
        facts += await _co_purchase(conn, target, cited)
        facts += _shared_theme(target, cited)
    if shopper is not None:
        facts += _repurchase(target, orders.get(target.item_id), now)
        facts += _price(target, usual, locale)
    facts += await _popularity(conn, country, target, now, locale, orders.get(target.item_id))
    return sorted(facts, key=lambda fact: PRIORITY.index(fact.kind))


def _shared_theme(target: CatalogItem, anchors: list[Anchor]) -> list[Fact]:
    theme = clean(target.theme or "")
    same = [a for a in anchors if theme and a.item.theme == target.theme]
    if not same:
        return []
    title = clean(same[0].item.title)
    return [
        _fact(
            "shared_theme", f"Like {title}, it is in {theme}.", theme=theme,
            item_id=same[0].item.item_id, title=title,
        )
    ]  # fmt: skip


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
                item_pair.c.lift >= MIN_LIFT,
                item_pair.c.confidence >= 0.005,  # rounds to 1% or more
            )
            .order_by(item_pair.c.lift.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return []
    anchor = by_id[row.item_id]
    title = clean(anchor.title)
    share, lift = round(100 * row.confidence), round(row.lift, 1)
    return [
        _fact(
            "co_purchase",
            f"{share}% of orders with {title} also hold {clean(target.title)}"
            f" ({lift:.1f} times the usual rate).",
            item_id=anchor.item_id, title=title, share=share, lift=lift,
            confidence=round(row.confidence, 4), baskets=row.baskets,
        )
    ]  # fmt: skip


def cadence(times: list[int]) -> tuple[float, float] | None:
    """(median gap in days, spread) of the gaps between orders a day or more apart, when there
    are at least MIN_GAPS of them and they agree; None otherwise. The gap is exact: the state
    is judged on it, and only the text rounds it."""
    gaps = np.diff(np.asarray(times, dtype=np.float64)) / DAY_S
    gaps = gaps[gaps >= 1]
    if len(gaps) < MIN_GAPS:
        return None
    low, median, high = np.percentile(gaps, [25, 50, 75])
    spread = float(high / low)
    if spread > CADENCE_MAX_SPREAD:
        return None
    return float(median), round(spread, 2)


def _repurchase(target: CatalogItem, orders: Orders | None, now: datetime) -> list[Fact]:
    if orders is None or orders.count == 0:
        return []
    since = max(0, (int(now.timestamp()) - orders.times[-1]) // DAY_S)
    steady = cadence(orders.times)
    gap = spread = None
    if orders.count == 1:
        state = "one_off"
    elif steady is None:
        state = "repeat"
    else:
        exact_gap, spread = steady
        ratio = since / exact_gap  # not the rounded gap: 12 days of 16.4 is early, not due
        state = "early" if ratio < DUE_FROM else "due" if ratio <= OVERDUE_AFTER else "overdue"
        gap = round(exact_gap)
    text = f"You have bought {clean(target.title)} {count_phrase(orders.count)}"
    if gap is not None:
        text += f", usually every {days_phrase(gap)}"
    text += f"; the last was {days_phrase(since)} ago."
    return [
        _fact(
            "repurchase", text, item_id=target.item_id, orders=orders.count, days_since=since,
            gap_days=gap, gap_spread=spread, state=state,
        )
    ]  # fmt: skip


def _price(target: CatalogItem, usual: float | None, locale: Locale) -> list[Fact]:
    if target.price is None or target.price <= 0 or usual is None or usual <= 0:
        return []
    ratio = target.price / usual
    state = "below" if ratio < PRICE_BELOW else "above" if ratio > PRICE_ABOVE else "close"
    price, paid = locale.money(target.price), locale.money(usual)
    words = {"below": "below", "above": "above", "close": "close to"}[state]
    return [
        _fact(
            "price",
            f"It typically sells for {price}, {words} the {paid} you usually pay for an item.",
            price=round(target.price, 2), usual=round(usual, 2), currency=locale.currency,
            price_text=price, usual_text=paid, ratio=round(ratio, 2), state=state,
            band=f"close: {PRICE_BELOW}-{PRICE_ABOVE}x the usual price",
        )
    ]  # fmt: skip


async def _popularity(
    conn: AsyncConnection,
    country: str | None,
    target: CatalogItem,
    now: datetime,
    locale: Locale,
    own: Orders | None,
) -> list[Fact]:
    shown = clean(country or "")  # a country that cleans to nothing is as good as unknown
    scope = country if country and shown else ALL_SHOPPERS
    row = (
        await conn.execute(
            select(item_popularity.c.month, item_popularity.c.rank, item_popularity.c.buyers)
            .where(
                item_popularity.c.country == scope,
                item_popularity.c.item_id == target.item_id,
                item_popularity.c.month <= now.date(),
            )
            .order_by(item_popularity.c.month.desc())
            .limit(1)
        )
    ).first()
    if row is None or row.rank > MAX_RANK:
        return []
    start = datetime(row.month.year, row.month.month, 1, tzinfo=UTC)
    end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
    bought_then = own is not None and any(
        start.timestamp() <= at < end.timestamp() for at in own.times
    )
    others = row.buyers - int(bought_then)  # the shopper is never their own evidence
    if others < MIN_OTHER_BUYERS:
        return []
    month = locale.month(row.month)
    where = f"in {shown}" if scope != ALL_SHOPPERS else "across the shop"
    return [
        _fact(
            "popularity",
            f"It was number {row.rank} with shoppers {where} in {month}.",
            scope="country" if scope != ALL_SHOPPERS else "all", country=shown or None,
            rank=row.rank, month=f"{row.month:%Y-%m}", month_name=month, buyers=row.buyers,
            other_buyers=others, state="top" if row.rank <= TOP_RANK else "ranked",
        )
    ]  # fmt: skip
