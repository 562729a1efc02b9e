"""A shopper's history as the recommender reads it, and the events the API writes (SQL only)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import app_user, interaction, user_feature
from app.ingest.sessions import SESSIONS_SQL, is_session, session_parameters
from app.serving.catalog import Catalog
from app.train.data import EVENT_TYPES, IntArray
from app.train.inputs import Events, visit_start

HISTORY_LIMIT = 2_000  # purchase lines read per shopper: far more than the model attends over
CART_LIMIT = 20
# Non-purchase events read per type, as a multiple of what the model keeps: the ongoing visit's
# are left out of the model's sequence, and the rest must still fill it.
EVENT_READ_FACTOR = 2


@dataclass(frozen=True)
class Shopper:
    user_id: int
    external_id: str
    country: str | None


@dataclass(frozen=True)
class Reading:
    """How much of a shopper is read, as of `now` (unix seconds): the cart is what was added
    since the last purchase and less than cart_ttl_s ago; `events_per_type` views, clicks and
    add-to-carts (0: none, for a model that doesn't read them), and the visit they are cut at
    ends after visit_gap_s without activity."""

    now: int
    cart_ttl_s: int
    events_per_type: int = 0
    visit_gap_s: int = 3600


@dataclass(frozen=True)
class History:
    """Purchases in time order as bundle indices, each with its basket's time (unix seconds),
    one time per basket, what is in the cart now (added since the last purchase, within the
    cart TTL) with when each was added, and the non-purchase events before the ongoing visit
    (which began at visit_start), in time order."""

    items: IntArray
    item_times: IntArray
    basket_times: IntArray
    cart: IntArray
    cart_times: IntArray
    events: Events
    visit_start: int

    @classmethod
    def empty(cls, now: int = 0) -> "History":
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none, none, none, none, Events.none(), now)

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
# an order id: one UTC day), the cart (added to it since the last purchase and after
# :cart_since, up to :now), newest first, and the last :event_limit events of each type in
# :event_types before :now. All come in order from ix_interaction_user_id_event_type_occurred_at,
# reading only the lines kept; the arrays keep that order, so each sort an aggregate makes finds
# its input sorted (oldest first instead: 1.18 ms of Postgres CPU a read, against 0.76). No
# row: no such shopper.
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
    ), cart AS (
        SELECT coalesce(array_agg(c.item_id ORDER BY c.occurred_at DESC, c.id DESC), '{}')
                   AS items,
               coalesce(array_agg(c.at ORDER BY c.occurred_at DESC, c.id DESC), '{}') AS times
        FROM shopper s CROSS JOIN history h CROSS JOIN LATERAL (
            SELECT c.item_id, c.occurred_at, c.id, extract(epoch FROM c.occurred_at)::bigint AS at
            FROM interaction c
            WHERE c.user_id = s.id AND c.event_type = 'add_to_cart'
              AND (h.last_purchase IS NULL OR c.occurred_at > h.last_purchase)
              AND c.occurred_at > :cart_since AND c.occurred_at <= :now
            ORDER BY c.occurred_at DESC, c.id DESC
            LIMIT :cart_limit
        ) c
    ), events AS (
        SELECT coalesce(array_agg(e.item_id ORDER BY e.occurred_at DESC, e.id DESC), '{}')
                   AS items,
               coalesce(array_agg(e.at ORDER BY e.occurred_at DESC, e.id DESC), '{}') AS times,
               coalesce(array_agg(e.event_type ORDER BY e.occurred_at DESC, e.id DESC), '{}')
                   AS types
        FROM shopper s CROSS JOIN unnest(CAST(:event_types AS text[])) AS t(event_type)
        CROSS JOIN LATERAL (
            SELECT e.item_id, e.occurred_at, e.id, e.event_type,
                   extract(epoch FROM e.occurred_at)::bigint AS at
            FROM interaction e
            WHERE e.user_id = s.id AND e.event_type = t.event_type AND e.occurred_at < :now
            ORDER BY e.occurred_at DESC, e.id DESC
            LIMIT :event_limit
        ) e
    )
    SELECT s.id, s.country, h.items, h.times, h.starts, c.items AS cart, c.times AS cart_times,
           e.items AS event_items, e.times AS event_times, e.types AS event_types
    FROM shopper s CROSS JOIN history h CROSS JOIN cart c CROSS JOIN events e
    """
)


async def load_shopper(
    conn: AsyncConnection, external_id: str, catalog: Catalog, reading: Reading
) -> tuple[Shopper, History] | None:
    """The shopper and their history as of reading.now; None if there is no such shopper."""
    now = datetime.fromtimestamp(reading.now, UTC)
    parameters = {
        "external_id": external_id, "history_limit": HISTORY_LIMIT, "cart_limit": CART_LIMIT,
        "now": now, "cart_since": datetime.fromtimestamp(reading.now - reading.cart_ttl_s, UTC),
        "event_types": list(EVENT_TYPES[1:]),
        "event_limit": EVENT_READ_FACTOR * reading.events_per_type,
    }  # fmt: skip
    row = (await conn.execute(SHOPPER_SQL, parameters)).first()
    if row is None:
        return None
    times = np.asarray(row.times[::-1], dtype=np.int64)  # oldest first from here on
    starts = np.asarray(row.starts[::-1], dtype=bool)
    basket_times = times[starts]
    item_times = basket_times[np.cumsum(starts) - 1] if len(times) else times
    items = catalog.index_array(np.asarray(row.items[::-1], dtype=np.int64))
    known = items >= 0
    cart = catalog.index_array(np.asarray(row.cart[::-1], dtype=np.int64))
    cart_times = np.asarray(row.cart_times[::-1], dtype=np.int64)
    events = _events(row.event_items, row.event_times, row.event_types, catalog)
    # The ongoing visit: activity of any type read, up to now, without a long enough gap;
    # purchases by their basket's time, as training reads them.
    activity = np.sort(np.concatenate([basket_times, events.times, cart_times]))
    started = visit_start(activity[activity < reading.now], reading.now, reading.visit_gap_s)
    history = History(
        items[known], item_times[known], basket_times, cart[cart >= 0], cart_times[cart >= 0],
        events, started,
    )  # fmt: skip
    return Shopper(row.id, external_id, row.country), history


def _events(items: list[int], times: list[int], types: list[str], catalog: Catalog) -> Events:
    """The events read (newest first per type) in time order as bundle indices; items the
    catalog lacks are dropped."""
    indices = catalog.index_array(np.asarray(items, dtype=np.int64))
    at = np.asarray(times, dtype=np.int64)
    type_index = {name: n for n, name in enumerate(EVENT_TYPES)}
    kinds = np.asarray([type_index[t] for t in types], dtype=np.int64)
    order = np.argsort(at, kind="stable")
    order = order[indices[order] >= 0]
    return Events(indices[order], at[order], kinds[order])


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
