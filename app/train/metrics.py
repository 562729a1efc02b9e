"""Full-ranking metrics over the whole catalog (no sampled negatives).

Relevance is binary: an item is relevant when it is in the shopper's next basket. Two variants:
"all" ranks every item; "new" (what a storefront shows) removes the items the shopper bought
before from both the ranking and the target, and skips shoppers whose target becomes empty.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.train.data import FloatArray, Snapshot
from app.train.split import EvalSet

Scorer = Callable[[EvalSet], FloatArray]
"""Scores every item for each shopper of the set: shape (len(set), n_items)."""

BATCH = 512


def recall_at(ranked: np.ndarray, target: set[int], k: int) -> float:
    return len(target.intersection(ranked[:k].tolist())) / len(target)


def ndcg_at(ranked: np.ndarray, target: set[int], k: int) -> float:
    gains = [1.0 / np.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in target]
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(len(target), k)))
    return float(sum(gains) / ideal)


def hit_at(ranked: np.ndarray, target: set[int], k: int) -> float:
    return float(bool(target.intersection(ranked[:k].tolist())))


@dataclass(frozen=True)
class Metrics:
    recall_10: float
    recall_20: float
    ndcg_10: float
    hit_10: float
    coverage_10: float
    users: int

    def as_dict(self) -> dict[str, float]:
        return {
            "recall@10": self.recall_10, "recall@20": self.recall_20, "ndcg@10": self.ndcg_10,
            "hit@10": self.hit_10, "coverage@10": self.coverage_10, "users": self.users,
        }  # fmt: skip


def history_items(snapshot: Snapshot, start: int, end: int) -> np.ndarray:
    return snapshot.basket_items[snapshot.basket_offsets[start] : snapshot.basket_offsets[end]]


def evaluate(snapshot: Snapshot, users: EvalSet, scorer: Scorer, new_only: bool) -> Metrics:
    recall_10, recall_20, ndcg_10, hit_10 = [], [], [], []
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
            shown.update(ranked[:10].tolist())
    count = len(ndcg_10)
    return Metrics(
        recall_10=float(np.mean(recall_10)) if count else 0.0,
        recall_20=float(np.mean(recall_20)) if count else 0.0,
        ndcg_10=float(np.mean(ndcg_10)) if count else 0.0,
        hit_10=float(np.mean(hit_10)) if count else 0.0,
        coverage_10=len(shown) / snapshot.n_items,
        users=count,
    )
