"""A frozen, array-shaped snapshot of the events in Postgres: what every model trains on.

Purchases are grouped into baskets (one order of one shopper, items de-duplicated), sorted by
shopper then time, stored as CSR-like arrays so that slicing a shopper's history is cheap. The
other events (add-to-cart, click, view) are kept one per row, sorted the same way: the two-tower
reads them as context, never as targets.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import psycopg

from app.features import PRICE_BANDS

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

# Items are indexed in SKU order and shoppers in external-id order, so the same data gives the
# same indices in any database, whatever ids the ingest happened to assign. A basket is one
# order_id: purchases without one carry their derived session (app/ingest/sessions.py).
SNAPSHOT_SQL = """
SELECT u.external_id, it.sku, i.order_id,
       extract(epoch FROM i.occurred_at)::bigint, i.quantity
FROM interaction i
JOIN app_user u ON u.id = i.user_id
JOIN item it ON it.id = i.item_id
WHERE i.event_type = 'purchase'
ORDER BY u.external_id, i.occurred_at, 3, it.sku, i.event_id
"""
# A sequence token's event type, by index (0: purchase). The order is the inputs' code, saved
# with every model: append, never reorder.
EVENT_TYPES = ("purchase", "add_to_cart", "click", "view")
EVENTS_SQL = """
SELECT u.external_id, it.sku, i.event_type, extract(epoch FROM i.occurred_at)::bigint
FROM interaction i
JOIN app_user u ON u.id = i.user_id
JOIN item it ON it.id = i.item_id
WHERE i.event_type <> 'purchase'
ORDER BY u.external_id, i.occurred_at, it.sku, i.event_type, i.event_id
"""


def _no_events() -> IntArray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class ItemSide:
    """What the item tower reads for every item of the catalog, by item index."""

    text: FloatArray  # (n_items, 384) MiniLM title vectors
    theme: IntArray  # index into themes; 0 = none
    price_band: IntArray  # index into price_bands; 0 = unknown
    themes: list[str]
    price_bands: list[str]


@dataclass(frozen=True)
class Snapshot:
    item_skus: list[str]  # item index -> SKU
    user_external_ids: list[str]  # user index -> external id
    user_country: IntArray  # index into countries; 0 = unknown
    countries: list[str]  # countries[0] == ""
    basket_user: IntArray  # per basket, sorted by (user, time)
    basket_time: IntArray  # unix seconds
    basket_offsets: IntArray  # basket b holds basket_items[offsets[b] : offsets[b + 1]]
    basket_items: IntArray
    basket_quantity: IntArray
    user_offsets: IntArray  # baskets of user u: user_offsets[u]:user_offsets[u+1]
    content_hash: str
    # Views, clicks and add-to-carts, sorted by (user, time); none in a purchases-only shop.
    event_item: IntArray = field(default_factory=_no_events)
    event_type: IntArray = field(default_factory=_no_events)  # index into EVENT_TYPES, >= 1
    event_time: IntArray = field(default_factory=_no_events)  # unix seconds
    event_offsets: IntArray | None = None  # events of user u: event_offsets[u]:[u + 1]

    @property
    def n_items(self) -> int:
        return len(self.item_skus)

    @property
    def n_users(self) -> int:
        return len(self.user_external_ids)

    @property
    def n_baskets(self) -> int:
        return len(self.basket_user)

    def items_of(self, basket: int) -> IntArray:
        return self.basket_items[self.basket_offsets[basket] : self.basket_offsets[basket + 1]]

    def baskets_of(self, user: int) -> range:
        return range(int(self.user_offsets[user]), int(self.user_offsets[user + 1]))

    def events_of(self, user: int) -> range:
        if self.event_offsets is None:
            return range(0)
        return range(int(self.event_offsets[user]), int(self.event_offsets[user + 1]))


def load_snapshot(conn: psycopg.Connection) -> Snapshot:
    items = [sku for (sku,) in conn.execute("SELECT sku FROM item ORDER BY sku")]
    users = conn.execute(
        "SELECT external_id, COALESCE(country, '') FROM app_user ORDER BY external_id"
    ).fetchall()
    item_index = {sku: n for n, sku in enumerate(items)}
    user_index = {external_id: n for n, (external_id, _) in enumerate(users)}
    countries = ["", *sorted({country for _, country in users if country})]
    country_index = {name: n for n, name in enumerate(countries)}

    basket_user: list[int] = []
    basket_time: list[int] = []
    basket_offsets = [0]
    basket_items: list[int] = []
    basket_quantity: list[int] = []
    digest = hashlib.sha256()
    current: tuple[str, str] | None = None
    in_basket: dict[int, int] = {}

    def close_basket() -> None:
        for item, quantity in in_basket.items():
            basket_items.append(item)
            basket_quantity.append(quantity)
        basket_offsets.append(len(basket_items))
        in_basket.clear()

    with conn.cursor() as cur:
        for external_id, sku, order_id, ts, quantity in cur.execute(SNAPSHOT_SQL):
            digest.update(f"{external_id},{sku},{order_id},{ts},{quantity};".encode())
            key = (external_id, order_id)
            if key != current:
                if current is not None:
                    close_basket()
                current = key
                basket_user.append(user_index[external_id])
                basket_time.append(ts)
            item = item_index[sku]
            in_basket[item] = in_basket.get(item, 0) + quantity
    if current is not None:
        close_basket()

    # Rows come sorted by (user, time), so baskets are too.
    users_array = np.asarray(basket_user, dtype=np.int64)
    user_offsets = np.searchsorted(users_array, np.arange(len(users) + 1)).astype(np.int64)
    # The other events join the digest only when there are some: a purchases-only shop keeps
    # the hash (and so the model) it had before they were read.
    type_index = {name: n for n, name in enumerate(EVENT_TYPES)}
    event_user, event_item, event_type, event_time = [], [], [], []
    with conn.cursor() as cur:
        for external_id, sku, kind, ts in cur.execute(EVENTS_SQL):
            digest.update(f"{kind}:{external_id},{sku},{ts};".encode())
            event_user.append(user_index[external_id])
            event_item.append(item_index[sku])
            event_type.append(type_index[kind])
            event_time.append(ts)
    event_users = np.asarray(event_user, dtype=np.int64)
    return Snapshot(
        item_skus=items,
        user_external_ids=[external_id for external_id, _ in users],
        user_country=np.asarray([country_index[c] for _, c in users], dtype=np.int64),
        countries=countries,
        basket_user=users_array,
        basket_time=np.asarray(basket_time, dtype=np.int64),
        basket_offsets=np.asarray(basket_offsets, dtype=np.int64),
        basket_items=np.asarray(basket_items, dtype=np.int64),
        basket_quantity=np.asarray(basket_quantity, dtype=np.int64),
        user_offsets=user_offsets,
        content_hash=digest.hexdigest(),
        event_item=np.asarray(event_item, dtype=np.int64),
        event_type=np.asarray(event_type, dtype=np.int64),
        event_time=np.asarray(event_time, dtype=np.int64),
        event_offsets=np.searchsorted(event_users, np.arange(len(users) + 1)).astype(np.int64),
    )


def to_datetime(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def load_item_side(conn: psycopg.Connection, skus: list[str]) -> ItemSide:
    """The item tower's inputs (title vector, theme, price band) in snapshot item order, from the
    tables `python -m app features` fills."""
    rows = conn.execute(
        "SELECT it.sku, it.theme, f.price_band, e.vector FROM item it"
        " LEFT JOIN item_feature f ON f.item_id = it.id"
        " LEFT JOIN item_embedding e ON e.item_id = it.id"
    ).fetchall()
    by_sku = {sku: (theme, band, vector) for sku, theme, band, vector in rows}
    lacking = [sku for sku in skus if by_sku.get(sku, (None, None, None))[2] is None]
    if lacking:
        raise RuntimeError(
            f"{len(lacking)} items have no title embedding (e.g. {lacking[0]}); "
            "run `python -m app features` first"
        )
    themes = ["(none)", *sorted({theme for theme, _, _ in by_sku.values() if theme})]
    theme_index = {name: n for n, name in enumerate(themes)}
    text = np.asarray([by_sku[sku][2] for sku in skus], dtype=np.float32)
    theme = np.asarray([theme_index.get(by_sku[sku][0] or "", 0) for sku in skus], dtype=np.int64)
    band = [by_sku[sku][1] for sku in skus]
    price_band = np.asarray([0 if b is None else b + 1 for b in band], dtype=np.int64)
    return ItemSide(text, theme, price_band, themes, ["(unknown)", *PRICE_BANDS])
