"""A shopper's history as the recommender reads it, and the events the API writes (SQL only)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import app_user, interaction, item
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


async def load_history(conn: AsyncConnection, user_id: int, catalog: Catalog) -> History:
    newest_first = (
        await conn.execute(
            select(interaction.c.item_id, interaction.c.occurred_at, interaction.c.order_id)
            .where(interaction.c.user_id == user_id, interaction.c.event_type == "purchase")
            .order_by(interaction.c.occurred_at.desc(), interaction.c.id.desc())
            .limit(HISTORY_LIMIT)
        )
    ).all()
    purchases = list(reversed(newest_first))
    items, item_times, basket_times = [], [], []
    last_basket: object = None
    for row in purchases:
        when = int(row.occurred_at.timestamp())
        # A basket is one order; events without an order id are grouped by their day.
        basket = row.order_id or when // 86_400
        if basket != last_basket:
            basket_times.append(when)
            last_basket = basket
        index = catalog.index_of.get(row.item_id)
        if index is not None:
            items.append(index)
            item_times.append(basket_times[-1])
    since = purchases[-1].occurred_at if purchases else None
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
        np.asarray(items, dtype=np.int64),
        np.asarray(item_times, dtype=np.int64),
        np.asarray(basket_times, dtype=np.int64),
        catalog.indices(reversed(cart_ids)),
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
