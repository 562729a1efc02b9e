"""Model inputs built from a shopper's history: the one code path for training, evaluation and
serving, so the model always sees features computed the same way.

The user tower's sequence holds the last purchases and, for a model that reads them, the last
views, clicks and add-to-carts *before the visit* being predicted: a visit is the run of the
shopper's activity (any event) without a gap of RECS_SESSION_GAP_MIN, as the ingest cuts
sessions. The visit's own events are left out in training and evaluation, as its cart would
otherwise announce the basket minutes before it is bought; serving leaves out the ongoing visit
(its cart and session items come in as the basket being filled, see serving/recommender.py).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.train.data import EVENT_TYPES, IntArray, Snapshot

SEQUENCE_LENGTH = 50  # last N items the user tower attends over
REPEAT_SLOTS = 128  # distinct past items the repeat scorer considers
DAY = 86_400
GAP_BUCKETS = 13  # log2 day buckets: 0, 1-2, 3-6, 7-14, ... 2047+
_COUNT_EDGES = [2, 3, 4, 6, 10, 18, 34]  # baskets holding an item: 1, 2, 3, 4-5, ... 34+
COUNT_BUCKETS = len(_COUNT_EDGES) + 1
_BASKET_EDGES = [1, 2, 3, 5, 9, 17, 33, 65]  # earlier baskets: 0, 1, 2, 3-4, ... 65+
BASKET_BUCKETS = len(_BASKET_EDGES) + 1
SHARE_BUCKETS = 11  # share of the shopper's baskets holding the item, in tenths


@dataclass(frozen=True)
class SequenceSpec:
    """Which events the sequence holds. events_per_type 0: purchases only, as every bundle
    made before other events were read (their manifests have no "inputs")."""

    events_per_type: int = 0  # the last N of each non-purchase type, before the visit
    visit_gap_s: int = 3600

    @property
    def length(self) -> int:
        return SEQUENCE_LENGTH + (len(EVENT_TYPES) - 1) * self.events_per_type

    def as_manifest(self) -> dict[str, Any]:
        read = EVENT_TYPES if self.events_per_type else EVENT_TYPES[:1]
        return {
            "sequence_events": list(read),
            "events_per_type": self.events_per_type,
            "visit_gap_min": self.visit_gap_s // 60,
        }

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "SequenceSpec":
        inputs = manifest.get("inputs")
        if inputs is None:
            return cls()
        if inputs["sequence_events"] != list(EVENT_TYPES[: len(inputs["sequence_events"])]):
            raise ValueError(f"unknown sequence events {inputs['sequence_events']}")
        return cls(int(inputs["events_per_type"]), 60 * int(inputs["visit_gap_min"]))


@dataclass(frozen=True)
class Events:
    """A shopper's non-purchase events in time order: items, times and EVENT_TYPES indices."""

    items: IntArray
    times: IntArray
    types: IntArray

    @classmethod
    def none(cls) -> "Events":
        empty = np.zeros(0, dtype=np.int64)
        return cls(empty, empty, empty)

    def before(self, at: int) -> "Events":
        keep = self.times < at
        return Events(self.items[keep], self.times[keep], self.types[keep])


def visit_start(activity: IntArray, at: int, gap_s: int) -> int:
    """When the visit holding time `at` began: `activity` are the shopper's event times (any
    type) before `at`, sorted; the visit goes back while consecutive times are under gap_s
    apart. `at` itself when the last activity is gap_s or more before it."""
    times = np.append(activity, at)
    breaks = np.flatnonzero(np.diff(times) >= gap_s)
    return int(times[breaks[-1] + 1]) if len(breaks) else int(times[0])


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

    sequence: IntArray  # (B, L) item indices, left-padded (L: SequenceSpec.length)
    sequence_gap: IntArray  # (B, L) day bucket between the event and now
    sequence_event: IntArray  # (B, L) EVENT_TYPES index of each token (0: purchase)
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
    events: Events | None = None,
    spec: SequenceSpec = SequenceSpec(),
) -> tuple[IntArray, ...]:
    """One shopper's inputs from their past purchases (items in time order, with the time of
    the basket each came from) and, when the spec reads them, their non-purchase events before
    the visit (the caller cuts at the visit), as of `now`."""
    tokens, token_times = items[-SEQUENCE_LENGTH:], item_times[-SEQUENCE_LENGTH:]
    kinds = np.zeros(len(tokens), dtype=np.int64)
    if spec.events_per_type and events is not None and len(events.items):
        kept = np.concatenate(
            [
                np.flatnonzero(events.types == t)[-spec.events_per_type :]
                for t in range(1, len(EVENT_TYPES))
            ]
        )
        # Purchases first, so one at the same second as an event stays before it.
        tokens = np.concatenate([tokens, events.items[kept]])
        order = np.argsort(np.concatenate([token_times, events.times[kept]]), kind="stable")
        tokens = tokens[order]
        token_times = np.concatenate([token_times, events.times[kept]])[order]
        kinds = np.concatenate([kinds, events.types[kept]])[order]
    sequence = np.full(spec.length, n_items, dtype=np.int64)
    gaps = np.zeros(spec.length, dtype=np.int64)
    sequence_event = np.zeros(spec.length, dtype=np.int64)
    if len(tokens):
        sequence[-len(tokens) :] = tokens
        gaps[-len(tokens) :] = day_bucket(now - token_times)
        sequence_event[-len(tokens) :] = kinds

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
        sequence, gaps, sequence_event,
        *(np.asarray(value, dtype=np.int64) for value in scalars),
        repeat_items, repeat_count, repeat_recency, repeat_share,
    )  # fmt: skip


def stack(rows: list[tuple[IntArray, ...]]) -> ShopperInputs:
    columns = list(zip(*rows, strict=True))
    return ShopperInputs(*(np.stack(column).astype(np.int64) for column in columns))


class HistoryIndex:
    """Slices of a snapshot's baskets (and events, when the spec reads them) as shopper
    histories."""

    def __init__(self, snapshot: Snapshot, spec: SequenceSpec = SequenceSpec()) -> None:
        self.snapshot = snapshot
        self.spec = spec
        lengths = np.diff(snapshot.basket_offsets)
        self.item_time = np.repeat(snapshot.basket_time, lengths)

    def row(self, user: int, start: int, end: int, now: int) -> tuple[IntArray, ...]:
        """Inputs for `user` from baskets [start, end) as of time `now`, the time of the basket
        predicted: events count from before the visit holding it."""
        s = self.snapshot
        lo, hi = int(s.basket_offsets[start]), int(s.basket_offsets[end])
        return shopper_row(
            s.basket_items[lo:hi], self.item_time[lo:hi], s.basket_time[start:end],
            int(s.user_country[user]), now, s.n_items, self.events_before_visit(user, now),
            self.spec,
        )  # fmt: skip

    def events_before_visit(self, user: int, at: int) -> Events | None:
        """The shopper's events before the visit holding time `at` (None: the spec reads none)."""
        s = self.snapshot
        if not self.spec.events_per_type:
            return None
        span = s.events_of(user)
        events = Events(
            s.event_item[span.start : span.stop], s.event_time[span.start : span.stop],
            s.event_type[span.start : span.stop],
        ).before(at)  # fmt: skip
        baskets = s.basket_time[s.baskets_of(user)]
        activity = np.sort(np.concatenate([baskets[baskets < at], events.times]))
        return events.before(visit_start(activity, at, self.spec.visit_gap_s))
