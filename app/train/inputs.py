"""Model inputs built from a shopper's purchase history: the one code path for training,
evaluation and serving, so the model always sees features computed the same way."""

from dataclasses import dataclass

import numpy as np

from app.train.data import IntArray, Snapshot

SEQUENCE_LENGTH = 50  # last N items the user tower attends over
REPEAT_SLOTS = 128  # distinct past items the repeat scorer considers
DAY = 86_400
GAP_BUCKETS = 13  # log2 day buckets: 0, 1-2, 3-6, 7-14, ... 2047+
_COUNT_EDGES = [2, 3, 4, 6, 10, 18, 34]  # baskets holding an item: 1, 2, 3, 4-5, ... 34+
COUNT_BUCKETS = len(_COUNT_EDGES) + 1
_BASKET_EDGES = [1, 2, 3, 5, 9, 17, 33, 65]  # earlier baskets: 0, 1, 2, 3-4, ... 65+
BASKET_BUCKETS = len(_BASKET_EDGES) + 1
SHARE_BUCKETS = 11  # share of the shopper's baskets holding the item, in tenths


def day_bucket(seconds: np.ndarray | int) -> IntArray:
    days = np.maximum(np.asarray(seconds, dtype=np.int64), 0) // DAY
    return np.asarray(np.minimum(np.floor(np.log2(days + 1)), GAP_BUCKETS - 1), dtype=np.int64)


def count_bucket(counts: np.ndarray) -> IntArray:
    return np.asarray(np.digitize(counts, _COUNT_EDGES), dtype=np.int64)


def basket_bucket(count: int) -> int:
    return int(np.digitize(count, _BASKET_EDGES))


@dataclass(frozen=True)
class ShopperInputs:
    """A batch of shoppers as the user tower and the repeat scorer read them. Padding uses the
    item index n_items (the model's padding row)."""

    sequence: IntArray  # (B, SEQUENCE_LENGTH) item indices, left-padded
    sequence_gap: IntArray  # (B, SEQUENCE_LENGTH) day bucket between the purchase and now
    country: IntArray  # (B,)
    baskets: IntArray  # (B,) basket-count bucket
    since_last: IntArray  # (B,) day bucket since the last basket
    repeat_items: IntArray  # (B, REPEAT_SLOTS) distinct past items, padded
    repeat_count: IntArray  # (B, REPEAT_SLOTS) count bucket of baskets holding the item
    repeat_recency: IntArray  # (B, REPEAT_SLOTS) day bucket since the item was last bought
    repeat_share: IntArray  # (B, REPEAT_SLOTS) share of the shopper's baskets holding it

    def __len__(self) -> int:
        return len(self.country)


def shopper_row(
    items: IntArray,
    item_times: IntArray,
    basket_times: IntArray,
    country: int,
    now: int,
    n_items: int,
) -> tuple[IntArray, ...]:
    """One shopper's inputs from their past purchases (items in time order, with the time of
    the basket each came from) as of `now`."""
    sequence = np.full(SEQUENCE_LENGTH, n_items, dtype=np.int64)
    gaps = np.zeros(SEQUENCE_LENGTH, dtype=np.int64)
    recent = items[-SEQUENCE_LENGTH:]
    if len(recent):
        sequence[-len(recent) :] = recent
        gaps[-len(recent) :] = day_bucket(now - item_times[-SEQUENCE_LENGTH:])

    repeat_items = np.full(REPEAT_SLOTS, n_items, dtype=np.int64)
    repeat_count = np.zeros(REPEAT_SLOTS, dtype=np.int64)
    repeat_recency = np.zeros(REPEAT_SLOTS, dtype=np.int64)
    repeat_share = np.zeros(REPEAT_SLOTS, dtype=np.int64)
    if len(items):
        distinct, inverse, counts = np.unique(items, return_inverse=True, return_counts=True)
        last = np.zeros(len(distinct), dtype=np.int64)
        np.maximum.at(last, inverse, item_times)
        keep = np.lexsort((-last, -counts))[:REPEAT_SLOTS]  # most bought, then most recent
        repeat_items[: len(keep)] = distinct[keep]
        repeat_count[: len(keep)] = count_bucket(counts[keep])
        repeat_recency[: len(keep)] = day_bucket(now - last[keep])
        share = np.floor(10 * counts[keep] / max(len(basket_times), 1))
        repeat_share[: len(keep)] = np.minimum(share, SHARE_BUCKETS - 1)

    since = day_bucket(now - basket_times[-1]) if len(basket_times) else GAP_BUCKETS - 1
    scalars = (country, basket_bucket(len(basket_times)), since)
    return (
        sequence, gaps, *(np.asarray(value, dtype=np.int64) for value in scalars),
        repeat_items, repeat_count, repeat_recency, repeat_share,
    )  # fmt: skip


def stack(rows: list[tuple[IntArray, ...]]) -> ShopperInputs:
    columns = list(zip(*rows, strict=True))
    return ShopperInputs(*(np.stack(column).astype(np.int64) for column in columns))


class HistoryIndex:
    """Slices of a snapshot's baskets as shopper histories."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        lengths = np.diff(snapshot.basket_offsets)
        self.item_time = np.repeat(snapshot.basket_time, lengths)

    def row(self, user: int, start: int, end: int, now: int) -> tuple[IntArray, ...]:
        """Inputs for `user` from baskets [start, end) as of time `now`."""
        s = self.snapshot
        lo, hi = int(s.basket_offsets[start]), int(s.basket_offsets[end])
        return shopper_row(
            s.basket_items[lo:hi], self.item_time[lo:hi], s.basket_time[start:end],
            int(s.user_country[user]), now, s.n_items,
        )  # fmt: skip
