"""The temporal evaluation split.

Everything before the cutoff is training data. Each shopper with at least one basket before the
cutoff and one after it is evaluated on their *next* basket after the cutoff, given their history
before it. Those shoppers are split at random (seeded) into a validation half, used for early
stopping and tuning, and a test half, used only for the reported figures.

Unless a cutoff is given, it comes from the data: the time of the first basket of the last
EVALUATION_SHARE of baskets. A share of baskets rather than of the time span, so that a shop
whose trade grows, or pauses, still leaves the same share of its orders to evaluate.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from app.train.data import IntArray, Snapshot

EVALUATION_SHARE = 0.2
COLD_START_MAX_BASKETS = 2
# Fewer evaluated shoppers than this in either half and early stopping and the reported figures
# are noise (one shopper moves NDCG@10 by a tenth or more).
MIN_SHOPPERS_PER_HALF = 10
MIN_TRAINING_BASKETS = 50


class TooLittleData(ValueError):
    """The data can't support a training run; the message names the numbers."""


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


def derive_cutoff(snapshot: Snapshot, evaluation_share: float = EVALUATION_SHARE) -> datetime:
    """The time from which the last `evaluation_share` of the baskets lie (UTC)."""
    if not 0 < evaluation_share < 1:
        raise ValueError(f"evaluation share {evaluation_share} is not between 0 and 1")
    if snapshot.n_baskets == 0:
        raise TooLittleData("the database holds no purchases; ingest a shop's events first")
    times = np.sort(snapshot.basket_time)
    first_evaluated = min(int(len(times) * (1 - evaluation_share)), len(times) - 1)
    return datetime.fromtimestamp(int(times[first_evaluated]), UTC)


def check_enough(split: Split) -> None:
    """Raise TooLittleData when the split can't train and evaluate a model honestly."""
    evaluated = len(split.validation) + len(split.test)
    when = f"the cutoff {split.cutoff:%Y-%m-%d %H:%M} UTC"
    if min(len(split.validation), len(split.test)) < MIN_SHOPPERS_PER_HALF:
        raise TooLittleData(
            f"{evaluated} shoppers have a basket before and after {when}"
            f" ({len(split.validation)} drawn to validate, {len(split.test)} to test); training"
            f" needs at least {MIN_SHOPPERS_PER_HALF} in each half: more shoppers with repeat"
            " orders, or another --cutoff"
        )
    if len(split.train_baskets) < MIN_TRAINING_BASKETS:
        raise TooLittleData(
            f"{len(split.train_baskets)} baskets lie before {when}; training needs at least"
            f" {MIN_TRAINING_BASKETS}"
        )
