"""The items the model can recommend, as the API shows them, aligned to the bundle's item index.

Loaded at startup and on each reload from Postgres. The API and the bundle know items by the
shop's own id (the SKU); code inside the service uses the database id and the catalog index.
This is the one place that maps between them.

Indices 0..n-1 are the bundle's items, in its order. Items the model was not trained on (added
by an ingest since) follow, once `python -m app features` has embedded their title: the item
tower gives them a vector from title, theme and price band alone (Retriever), so they are
recommended, similar and explained before the next training run.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.tables import item, item_embedding, item_feature
from app.train.data import BoolArray, FloatArray, IntArray


@dataclass(frozen=True)
class NewItems:
    """What the item tower reads for the items after the bundle's, in catalog order."""

    text: FloatArray  # (m, 384) title vectors, as the features step embedded them
    theme: list[str | None]
    price_band: list[int | None]  # item_feature.price_band: an index into PRICE_BANDS


@dataclass(frozen=True)
class CatalogItem:
    index: int  # catalog index: the bundle's row for a trained item, then the new items
    item_id: int  # database id: internal, never shown by the API
    sku: str  # the shop's own id: what the API calls item_id
    title: str  # display title, readable case
    price: float | None  # typical price paid
    theme: str | None


Row = tuple[int, str, str, Decimal | None, str | None]  # id, sku, title, price, theme


class Catalog:
    def __init__(
        self,
        skus: list[str],
        rows: Iterable[Row],
        new_rows: Iterable[tuple[Row, list[float], int | None]] = (),
    ):
        """`skus`: the bundle's items; `rows`: the database's items; `new_rows`: items not in
        the bundle, each with its title vector and price band."""
        by_sku = {row[1]: row for row in rows}
        self.items: list[CatalogItem | None] = []
        for index, sku in enumerate(skus):
            row = by_sku.get(sku)
            # None: in the bundle but gone from the database
            self.items.append(None if row is None else _entry(index, row))
        self.trained = len(skus)  # the first `trained` items are the bundle's
        text, themes, bands = [], [], []
        for row, vector, band in new_rows:
            self.items.append(_entry(len(self.items), row))
            text.append(vector)
            themes.append(row[4])
            bands.append(band)
        vectors = np.asarray(text, dtype=np.float32) if text else np.zeros((0, 0), np.float32)
        self.new_items = NewItems(vectors, themes, bands)
        self.index_of: dict[int, int] = {
            entry.item_id: entry.index for entry in self.items if entry is not None
        }
        self._index_of_sku = {entry.sku: entry.index for entry in self.items if entry is not None}
        self.price = np.asarray(
            [np.nan if e is None or e.price is None else e.price for e in self.items],
            dtype=np.float64,
        )
        self.theme = [None if e is None else e.theme for e in self.items]
        # Database id -> bundle index (-1: not in the bundle), for whole histories at once.
        self._index_by_id = np.full(max(self.index_of, default=0) + 1, -1, dtype=np.int64)
        self._index_by_id[list(self.index_of)] = list(self.index_of.values())
        self.missing: IntArray = np.asarray(
            [n for n, e in enumerate(self.items) if e is None], dtype=np.int64
        )

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: int) -> CatalogItem | None:
        index = self.index_of.get(item_id)
        return None if index is None else self.items[index]

    def find(self, sku: str) -> CatalogItem | None:
        """The item of a shop's id, None if the catalog has no such item."""
        index = self._index_of_sku.get(sku)
        return None if index is None else self.items[index]

    def sku_indices(self, skus: Iterable[str]) -> IntArray:
        """Bundle indices of the shop's ids the catalog knows (unknown ids are skipped)."""
        found = [self._index_of_sku[s] for s in skus if s in self._index_of_sku]
        return np.asarray(found, dtype=np.int64)

    def sku_of(self, item_id: int) -> str:
        """The shop's id of a catalog item's database id."""
        return self.at(self.index_of[item_id]).sku

    def at(self, index: int) -> CatalogItem:
        entry = self.items[index]
        if entry is None:
            raise KeyError(index)
        return entry

    def index_array(self, item_ids: IntArray) -> IntArray:
        """Bundle indices of database ids, -1 where the item is not in the bundle."""
        inside = (item_ids >= 0) & (item_ids < len(self._index_by_id))
        out = np.full(len(item_ids), -1, dtype=np.int64)
        out[inside] = self._index_by_id[item_ids[inside]]
        return out

    def indices(self, item_ids: Iterable[int]) -> IntArray:
        """Bundle indices of the known ids (unknown ids are skipped)."""
        found = [self.index_of[i] for i in item_ids if i in self.index_of]
        return np.asarray(found, dtype=np.int64)

    def allowed(
        self, theme: str | None, min_price: float | None, max_price: float | None
    ) -> BoolArray:
        """Items that pass the filters; an item without a price fails any price filter."""
        mask = np.ones(len(self.items), dtype=bool)
        mask[self.missing] = False
        if theme is not None:
            wanted = theme.casefold()
            mask &= np.asarray([(t or "").casefold() == wanted for t in self.theme], dtype=bool)
        with np.errstate(invalid="ignore"):
            if min_price is not None:
                mask &= self.price >= min_price
            if max_price is not None:
                mask &= self.price <= max_price
        return mask


def _entry(index: int, row: Row) -> CatalogItem:
    item_id, sku, title, price, theme = row
    return CatalogItem(index, item_id, sku, title, None if price is None else float(price), theme)


async def load_catalog(conn: AsyncConnection, skus: list[str]) -> Catalog:
    """The bundle's items, then the database's other items whose title is embedded (in
    database id order, so every process of a deployment numbers them alike)."""
    # The typical price paid (features step), else the price the item was loaded with.
    price = func.coalesce(item_feature.c.typical_price, item.c.price)
    query = (
        select(
            item.c.id, item.c.sku, item.c.display_title, price, item.c.theme,
            item_embedding.c.vector, item_feature.c.price_band,
        )
        .outerjoin(item_feature, item_feature.c.item_id == item.c.id)
        .outerjoin(item_embedding, item_embedding.c.item_id == item.c.id)
        .order_by(item.c.id)
    )  # fmt: skip
    rows = (await conn.execute(query)).all()
    trained = set(skus)
    new = [
        ((r[0], r[1], r[2], r[3], r[4]), list(r[5]), r[6])
        for r in rows
        if r[1] not in trained and r[5] is not None
    ]
    return Catalog(skus, [(r[0], r[1], r[2], r[3], r[4]) for r in rows], new)


async def item_ids_of(conn: AsyncConnection, skus: Collection[str]) -> dict[str, int]:
    """Database ids of the shop's item ids that the database holds (unknown ids are left out):
    for writes, which may name an item loaded since the catalog was."""
    rows = await conn.execute(select(item.c.sku, item.c.id).where(item.c.sku.in_(skus)))
    return {row.sku: row.id for row in rows}
