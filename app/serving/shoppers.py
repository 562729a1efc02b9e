"""A shopper's history as the recommender reads it, and the events the API writes (SQL only)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import app_user, interaction, item, user_feature
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


async def find_shopper(conn: AsyncConnection, external_id: str) -> Shopper | None:
    row = (
        await conn.execute(
            select(app_user.c.id, app_user.c.country).where(app_user.c.external_id == external_id)
        )
    ).first()
    return None if row is None else Shopper(row.id, external_id, row.country)


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


# The shopper's last purchase lines in time order, as arrays: one round trip, no per-row
# objects. A basket is one order (events without an order id: one UTC day); `starts` marks the
# first line of each basket.
HISTORY_SQL = text(
    """
    WITH recent AS (
        SELECT item_id, occurred_at, id,
               coalesce(order_id, 'day:' || floor(extract(epoch FROM occurred_at) / 86400))
                   AS basket
        FROM interaction
        WHERE user_id = :user_id AND event_type = 'purchase'
        ORDER BY occurred_at DESC, id DESC
        LIMIT :limit
    ), marked AS (
        SELECT item_id, extract(epoch FROM occurred_at)::bigint AS at, occurred_at, id,
               basket IS DISTINCT FROM lag(basket) OVER (ORDER BY occurred_at, id) AS starts
        FROM recent
    )
    SELECT coalesce(array_agg(item_id ORDER BY occurred_at, id), '{}'),
           coalesce(array_agg(at ORDER BY occurred_at, id), '{}'),
           coalesce(array_agg(starts ORDER BY occurred_at, id), '{}'),
           max(occurred_at)
    FROM marked
    """
)


async def load_history(conn: AsyncConnection, user_id: int, catalog: Catalog) -> History:
    row = (await conn.execute(HISTORY_SQL, {"user_id": user_id, "limit": HISTORY_LIMIT})).one()
    item_ids = np.asarray(row[0], dtype=np.int64)
    times = np.asarray(row[1], dtype=np.int64)
    starts = np.asarray(row[2], dtype=bool)
    basket_times = times[starts]
    item_times = basket_times[np.cumsum(starts) - 1] if len(times) else times
    items = catalog.index_array(item_ids)
    known = items >= 0
    since = row[3]
    cart_query = (
        select(interaction.c.item_id)
        .where(interaction.c.user_id == user_id, interaction.c.event_type == "add_to_cart")
        .order_by(interaction.c.occurred_at.desc(), interaction.c.id.desc())
        .limit(CART_LIMIT)
    )
    if since is not None:
        cart_query = cart_query.where(interaction.c.occurred_at > since)
    cart_ids = (await conn.execute(cart_query)).scalars().all()
    return History(
        items[known], item_times[known], basket_times, catalog.indices(reversed(cart_ids))
    )


@dataclass(frozen=True)
class NewEvent:
    event_id: str
    user_id: str  # the shopper's external id
    item_id: int
    event: str
    quantity: int
    price: Decimal | None
    order_id: str | None
    occurred_at: datetime
    country: str | None


async def unknown_items(conn: AsyncConnection, item_ids: Sequence[int]) -> list[int]:
    known = set(
        (await conn.execute(select(item.c.id).where(item.c.id.in_(set(item_ids))))).scalars()
    )
    return sorted(set(item_ids) - known)


async def record_events(conn: AsyncConnection, events: Sequence[NewEvent]) -> int:
    """Store the events in the caller's transaction; returns how many were new (an event_id
    already stored is skipped: retries are safe). Unknown shoppers are created."""
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
        .returning(interaction.c.id)
    )  # fmt: skip
    return len(result.all())
