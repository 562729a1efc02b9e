"""A shopper's history as the recommender reads it, and the events the API writes (SQL only)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import app_user, interaction, user_feature
from app.ingest.sessions import SESSIONS_SQL, is_session, session_parameters
from app.serving.catalog import Catalog
from app.train.data import IntArray

HISTORY_LIMIT = 2_000  # purchase lines read per shopper: far more than the model attends over
CART_LIMIT = 20


@dataclass(frozen=True)
class Shopper:
    user_id: int
    external_id: str
    country: str | None


@dataclass(frozen=True)
class History:
    """Purchases in time order as bundle indices, each with its basket's time (unix seconds),
    one time per basket, and what is in the cart now (added since the last purchase)."""

    items: IntArray
    item_times: IntArray
    basket_times: IntArray
    cart: IntArray

    @classmethod
    def empty(cls) -> "History":
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, none)

    @property
    def purchased(self) -> IntArray:
        return np.unique(self.items)


async def sample_shoppers(
    conn: AsyncConnection, n: int, min_orders: int
) -> list[tuple[str, str | None, int]]:
    """A random sample of shoppers with at least `min_orders` orders (the demo's picker):
    (id, country, orders)."""
    query = (
        select(app_user.c.external_id, app_user.c.country, user_feature.c.baskets)
        .join(user_feature, user_feature.c.user_id == app_user.c.id)
        .where(user_feature.c.baskets >= min_orders)
        .order_by(func.random())
        .limit(n)
    )
    return [(u, c, int(o)) for u, c, o in await conn.execute(query)]


# A shopper and their history in one round trip, as arrays (no per-row objects): the last
# purchase lines newest first, each marked when it starts a basket (one order; events without
# an order id: one UTC day), and the cart (added to it since the last purchase), newest first.
# Both come in order from ix_interaction_user_id_event_type_occurred_at, reading only the lines
# kept; the arrays keep that order, so each sort an aggregate makes finds its input sorted
# (oldest first instead: 1.18 ms of Postgres CPU a read, against 0.76). No row: no such shopper.
SHOPPER_SQL = text(
    """
    WITH shopper AS (
        SELECT id, country FROM app_user WHERE external_id = :external_id
    ), recent AS (
        SELECT r.item_id, r.at, r.occurred_at, r.id,
               r.basket IS DISTINCT FROM lead(r.basket) OVER newest_first AS starts
        FROM shopper s CROSS JOIN LATERAL (
            SELECT i.item_id, i.occurred_at, i.id,
                   extract(epoch FROM i.occurred_at)::bigint AS at,
                   coalesce(i.order_id, 'day:' || floor(extract(epoch FROM i.occurred_at) / 86400))
                       AS basket
            FROM interaction i
            WHERE i.user_id = s.id AND i.event_type = 'purchase'
            ORDER BY i.occurred_at DESC, i.id DESC
            LIMIT :history_limit
        ) r
        WINDOW newest_first AS (ORDER BY r.occurred_at DESC, r.id DESC)
    ), history AS (
        SELECT coalesce(array_agg(item_id ORDER BY occurred_at DESC, id DESC), '{}') AS items,
               coalesce(array_agg(at ORDER BY occurred_at DESC, id DESC), '{}') AS times,
               coalesce(array_agg(starts ORDER BY occurred_at DESC, id DESC), '{}') AS starts,
               max(occurred_at) AS last_purchase
        FROM recent
    )
    SELECT s.id, s.country, h.items, h.times, h.starts,
           (SELECT coalesce(array_agg(c.item_id ORDER BY c.occurred_at DESC, c.id DESC), '{}')
            FROM (
                SELECT c.item_id, c.occurred_at, c.id
                FROM interaction c
                WHERE c.user_id = s.id AND c.event_type = 'add_to_cart'
                  AND (h.last_purchase IS NULL OR c.occurred_at > h.last_purchase)
                ORDER BY c.occurred_at DESC, c.id DESC
                LIMIT :cart_limit
            ) c) AS cart
    FROM shopper s CROSS JOIN history h
    """
)


async def load_shopper(
    conn: AsyncConnection, external_id: str, catalog: Catalog
) -> tuple[Shopper, History] | None:
    """The shopper and their history; None if there is no such shopper."""
    row = (
        await conn.execute(
            SHOPPER_SQL,
            {"external_id": external_id, "history_limit": HISTORY_LIMIT, "cart_limit": CART_LIMIT},
        )
    ).first()
    if row is None:
        return None
    times = np.asarray(row.times[::-1], dtype=np.int64)  # oldest first from here on
    starts = np.asarray(row.starts[::-1], dtype=bool)
    basket_times = times[starts]
    item_times = basket_times[np.cumsum(starts) - 1] if len(times) else times
    items = catalog.index_array(np.asarray(row.items[::-1], dtype=np.int64))
    known = items >= 0
    history = History(
        items[known], item_times[known], basket_times, catalog.indices(reversed(row.cart))
    )
    return Shopper(row.id, external_id, row.country), history


@dataclass(frozen=True)
class NewEvent:
    event_id: str
    user_id: str  # the shopper's external id
    item_id: int  # database id
    event: str
    quantity: int
    price: Decimal | None
    order_id: str | None
    occurred_at: datetime
    country: str | None
    time_given: bool = True  # False: occurred_at is when it was received (a retry's differs)


async def record_events(
    conn: AsyncConnection, events: Sequence[NewEvent], session_gap_min: int
) -> set[str]:
    """Store the events in the caller's transaction; returns the event_ids that were new (an
    event_id already stored is skipped: retries are safe). Unknown shoppers are created. A new
    purchase without an order id joins its shopper's session, as the ingest derives them."""
    shoppers = {e.user_id: e.country for e in events}
    await conn.execute(
        insert(app_user)
        .values(
            [
                {"external_id": external, "country": country, "first_seen_at": func.now()}
                for external, country in shoppers.items()
            ]
        )
        .on_conflict_do_nothing(index_elements=["external_id"])
    )
    found = await conn.execute(
        select(app_user.c.external_id, app_user.c.id).where(app_user.c.external_id.in_(shoppers))
    )
    ids = {row.external_id: row.id for row in found}
    result = await conn.execute(
        insert(interaction)
        .values(
            [
                {
                    "event_id": e.event_id, "user_id": ids[e.user_id], "item_id": e.item_id,
                    "event_type": e.event, "quantity": e.quantity, "unit_price": e.price,
                    "order_id": e.order_id, "occurred_at": e.occurred_at,
                }
                for e in events
            ]
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(interaction.c.event_id)
    )  # fmt: skip
    new = set(result.scalars())
    sessioned = {
        ids[e.user_id]
        for e in events
        if e.event == "purchase" and e.order_id is None and e.event_id in new
    }
    if sessioned:
        await conn.exec_driver_sql(SESSIONS_SQL, session_parameters(sessioned, session_gap_min))
    return new


async def conflicting_events(
    conn: AsyncConnection, events: Sequence[NewEvent], stored_now: set[str]
) -> list[str]:
    """The event_ids of `events` already stored for a different event: another shopper, item,
    type, quantity, price, order or, when the client gave one, time. `stored_now`: the ids
    record_events just stored, each from the first event that carried it; every other event is
    checked against what is stored. A true retry matches."""
    first: set[str] = set()
    checked = []
    for e in events:
        if e.event_id in first or e.event_id not in stored_now:
            checked.append(e)
        first.add(e.event_id)
    if not checked:
        return []
    rows = await conn.execute(
        select(
            interaction.c.event_id, app_user.c.external_id, interaction.c.item_id,
            interaction.c.event_type, interaction.c.quantity, interaction.c.unit_price,
            interaction.c.order_id, interaction.c.occurred_at,
        )
        .join(app_user, app_user.c.id == interaction.c.user_id)
        .where(interaction.c.event_id.in_({e.event_id for e in checked}))
    )  # fmt: skip
    stored = {row.event_id: row for row in rows}
    conflicts = set()
    for e in checked:
        row = stored[e.event_id]
        # A derived session stands for "no order id given": a retry without one matches it.
        order = None if is_session(row.order_id) else row.order_id
        what = (row.external_id, row.item_id, row.event_type, row.quantity, row.unit_price,
                order)  # fmt: skip
        if what != (e.user_id, e.item_id, e.event, e.quantity, e.price, e.order_id) or (
            e.time_given and row.occurred_at != e.occurred_at
        ):
            conflicts.add(e.event_id)
    return sorted(conflicts)
