"""Full-ranking metrics over the whole catalog (no sampled negatives).

Relevance is binary: an item is relevant when it is in the shopper's next basket. Two variants:
"all" ranks every item; "new" (what a storefront shows) removes the items the shopper bought
before from both the ranking and the target, and skips shoppers whose target becomes empty.

Uncertainty: 95% percentile bootstrap intervals over the evaluated shoppers (RESAMPLES draws of
the shoppers with replacement, seeded) for the metrics that are means over shoppers. Two models
are compared on the *same* draws (a paired bootstrap of the difference), which is far tighter
than comparing two intervals: most of the spread comes from which shoppers were drawn, and both
models share it. Coverage gets none: it counts the distinct items of all lists together, and a
resample (about 63% distinct shoppers) shows fewer of them, so its interval would lie below the
figure itself.
"""

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.train.data import FloatArray, IntArray, Snapshot
from app.train.split import EvalSet

Scorer = Callable[[EvalSet], FloatArray]
"""Scores every item for each shopper of the set: shape (len(set), n_items)."""

BATCH = 512
RESAMPLES = 1000
LEVEL = 0.95
# The metrics averaged over shoppers (the ones with intervals), in Metrics.per_shopper's order.
MEAN_METRICS = ("recall@10", "recall@20", "ndcg@10", "hit@10")
METRICS = (*MEAN_METRICS, "coverage@10")

Float64Array = npt.NDArray[np.float64]


def recall_at(ranked: np.ndarray, target: set[int], k: int) -> float:
    return len(target.intersection(ranked[:k].tolist())) / len(target)


def ndcg_at(ranked: np.ndarray, target: set[int], k: int) -> float:
    gains = [1.0 / np.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in target]
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(len(target), k)))
    return float(sum(gains) / ideal)


def hit_at(ranked: np.ndarray, target: set[int], k: int) -> float:
    return float(bool(target.intersection(ranked[:k].tolist())))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


NO_INTERVAL = Interval(math.nan, math.nan)  # no shopper was evaluated


@dataclass(frozen=True)
class Difference:
    """One model's metric minus another's over the same shoppers, with its paired interval."""

    metric: str
    mean: float
    interval: Interval

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes 0 (at LEVEL); an empty evaluation never is."""
        return not (math.isnan(self.interval.low) or 0.0 in self.interval)


@dataclass(frozen=True)
class Metrics:
    recall_10: float
    recall_20: float
    ndcg_10: float
    hit_10: float
    coverage_10: float
    users: int
    shoppers: IntArray  # the evaluated shoppers (snapshot user indices), in evaluation order
    per_shopper: Float64Array  # (users, len(MEAN_METRICS))

    def value(self, metric: str) -> float:
        return float(getattr(self, metric.replace("@", "_")))

    @functools.cached_property
    def resampled(self) -> Float64Array:
        """Each mean metric on each bootstrap resample of the shoppers: (RESAMPLES, metrics)."""
        means: Float64Array = self.per_shopper[resample_indices(self.users)].mean(axis=1)
        return means

    @functools.cached_property
    def intervals(self) -> dict[str, Interval]:
        """Each mean metric's LEVEL bootstrap interval over the evaluated shoppers."""
        if not self.users:
            return dict.fromkeys(MEAN_METRICS, NO_INTERVAL)
        return {m: _percentiles(self.resampled[:, n]) for n, m in enumerate(MEAN_METRICS)}

    def as_dict(self) -> dict[str, float]:
        """Each metric, its interval as "<metric> low" and "<metric> high" (none when nobody was
        evaluated), and the number of shoppers."""
        values = {metric: self.value(metric) for metric in METRICS}
        bounds = {
            f"{metric} {side}": getattr(interval, side)
            for metric, interval in self.intervals.items()
            for side in ("low", "high")
            if self.users
        }
        return values | bounds | {"users": self.users}


def resample_indices(n: int, resamples: int = RESAMPLES, seed: int = 0) -> IntArray:
    """(resamples, n) draws of n shoppers with replacement: the same for every model scored on
    the same shoppers, which is what pairs their comparison."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n), dtype=np.int64)


def _percentiles(values: Float64Array) -> Interval:
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high))


def paired_difference(ours: Metrics, theirs: Metrics, metric: str) -> Difference:
    """ours - theirs on `metric`, with the bootstrap interval of the difference over the same
    resamples of the shoppers both were evaluated on."""
    if not np.array_equal(ours.shoppers, theirs.shoppers):
        raise ValueError("a paired comparison needs both models scored on the same shoppers")
    mean = ours.value(metric) - theirs.value(metric)
    if not ours.users:
        return Difference(metric, mean, NO_INTERVAL)
    # Same shoppers, same seed: the same resamples, so the difference is paired.
    column = MEAN_METRICS.index(metric)
    spread = ours.resampled[:, column] - theirs.resampled[:, column]
    return Difference(metric, mean, _percentiles(spread))


def history_items(snapshot: Snapshot, start: int, end: int) -> np.ndarray:
    return snapshot.basket_items[snapshot.basket_offsets[start] : snapshot.basket_offsets[end]]


def evaluate(snapshot: Snapshot, users: EvalSet, scorer: Scorer, new_only: bool) -> Metrics:
    recall_10, recall_20, ndcg_10, hit_10 = [], [], [], []
    evaluated: list[int] = []
    shown: set[int] = set()
    for first in range(0, len(users), BATCH):
        batch = users.subset(np.arange(first, min(first + BATCH, len(users))))
        scores = np.array(scorer(batch), dtype=np.float32, copy=True)
        if scores.shape != (len(batch), snapshot.n_items):
            raise ValueError(f"scorer returned shape {scores.shape}")
        for row in range(len(batch)):
            target = set(snapshot.items_of(int(batch.target_basket[row])).tolist())
            if new_only:
                seen = history_items(
                    snapshot, int(batch.history_start[row]), int(batch.history_end[row])
                )
                scores[row, seen] = -np.inf
                target -= set(seen.tolist())
                if not target:
                    continue
            top = np.argpartition(-scores[row], 20)[:20]
            ranked = top[np.argsort(-scores[row, top], kind="stable")]
            recall_10.append(recall_at(ranked, target, 10))
            recall_20.append(recall_at(ranked, target, 20))
            ndcg_10.append(ndcg_at(ranked, target, 10))
            hit_10.append(hit_at(ranked, target, 10))
            evaluated.append(int(batch.users[row]))
            shown.update(ranked[:10].tolist())
    count = len(ndcg_10)
    per_shopper = np.asarray([recall_10, recall_20, ndcg_10, hit_10], dtype=np.float64)
    return Metrics(
        recall_10=float(np.mean(recall_10)) if count else 0.0,
        recall_20=float(np.mean(recall_20)) if count else 0.0,
        ndcg_10=float(np.mean(ndcg_10)) if count else 0.0,
        hit_10=float(np.mean(hit_10)) if count else 0.0,
        coverage_10=len(shown) / snapshot.n_items,
        users=count,
        shoppers=np.asarray(evaluated, dtype=np.int64),
        per_shopper=per_shopper.T.reshape(count, len(MEAN_METRICS)),
    )
