"""The temporal evaluation split.

Everything before the cutoff is training data. Each shopper with at least one basket before the
cutoff and one after it is evaluated on their *next* basket after the cutoff, given their history
before it. Those shoppers are split at random (seeded) into a validation half, used for early
stopping and tuning, and a test half, used only for the reported figures.
"""

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from app.train.data import IntArray, Snapshot

DEFAULT_CUTOFF = "2011-09-09"  # the last three months of the data are evaluation time
COLD_START_MAX_BASKETS = 2


@dataclass(frozen=True)
class EvalSet:
    """Shoppers to evaluate: each with history baskets [start, cut) and a target basket."""

    users: IntArray
    history_start: IntArray  # first basket of the shopper
    history_end: IntArray  # one past the last basket before the cutoff
    target_basket: IntArray

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, mask: np.ndarray) -> "EvalSet":
        return EvalSet(
            self.users[mask], self.history_start[mask], self.history_end[mask],
            self.target_basket[mask],
        )  # fmt: skip

    def cold_start(self) -> "EvalSet":
        return self.subset(self.history_end - self.history_start <= COLD_START_MAX_BASKETS)


@dataclass(frozen=True)
class Split:
    snapshot: Snapshot
    cutoff: datetime
    train_baskets: IntArray  # basket indices before the cutoff
    validation: EvalSet
    test: EvalSet


def temporal_split(snapshot: Snapshot, cutoff: datetime, seed: int = 0) -> Split:
    cut_ts = int(cutoff.timestamp())
    before = snapshot.basket_time < cut_ts
    users, starts, ends, targets = [], [], [], []
    for user in range(snapshot.n_users):
        baskets = snapshot.baskets_of(user)
        if len(baskets) == 0:
            continue
        end = baskets.start + int(np.count_nonzero(before[baskets.start : baskets.stop]))
        if end == baskets.start or end == baskets.stop:
            continue
        users.append(user)
        starts.append(baskets.start)
        ends.append(end)
        targets.append(end)
    everyone = EvalSet(*(np.asarray(a, dtype=np.int64) for a in (users, starts, ends, targets)))
    in_validation = np.random.default_rng(seed).random(len(everyone)) < 0.5
    return Split(
        snapshot=snapshot,
        cutoff=cutoff,
        train_baskets=np.flatnonzero(before).astype(np.int64),
        validation=everyone.subset(in_validation),
        test=everyone.subset(~in_validation),
    )
