"""The temporal split: a cutoff derived from the data, and a clear refusal of too little data."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from app.train.data import Snapshot
from app.train.split import (
    MIN_SHOPPERS_PER_HALF,
    TooLittleData,
    check_enough,
    derive_cutoff,
    temporal_split,
)

START = datetime(2023, 1, 1, tzinfo=UTC)


def snapshot_of(baskets: list[tuple[int, int]], n_users: int) -> Snapshot:
    """Baskets as (user, day after START), one item each; sorted here by (user, time)."""
    baskets = sorted(baskets)
    users = np.asarray([user for user, _ in baskets], dtype=np.int64)
    times = [int((START + timedelta(days=day)).timestamp()) for _, day in baskets]
    return Snapshot(
        item_skus=["I0", "I1"],
        user_external_ids=[f"U{n}" for n in range(n_users)],
        user_country=np.zeros(n_users, dtype=np.int64),
        countries=[""],
        basket_user=users,
        basket_time=np.asarray(times, dtype=np.int64),
        basket_offsets=np.arange(len(baskets) + 1, dtype=np.int64),
        basket_items=np.asarray([day % 2 for _, day in baskets], dtype=np.int64),
        basket_quantity=np.ones(len(baskets), dtype=np.int64),
        user_offsets=np.searchsorted(users, np.arange(n_users + 1)).astype(np.int64),
        content_hash="test",
    )


def test_the_derived_cutoff_leaves_the_last_share_of_baskets_to_evaluation() -> None:
    # 100 baskets on days 0..99, one shopper each; trade is not uniform in time for the rule.
    snapshot = snapshot_of([(n, n) for n in range(100)], 100)
    cutoff = derive_cutoff(snapshot, 0.2)
    assert cutoff == START + timedelta(days=80)
    after = np.count_nonzero(snapshot.basket_time >= int(cutoff.timestamp()))
    assert after == 20
    assert derive_cutoff(snapshot, 0.5) == START + timedelta(days=50)


def test_a_tiny_share_still_leaves_the_last_basket_to_evaluate() -> None:
    snapshot = snapshot_of([(0, 0), (0, 5), (1, 9)], 2)
    assert derive_cutoff(snapshot, 0.01) == START + timedelta(days=9)


def test_no_purchases_is_too_little_data() -> None:
    with pytest.raises(TooLittleData, match="no purchases"):
        derive_cutoff(snapshot_of([], 3))


@pytest.mark.parametrize("share", [0.0, 1.0, -0.5, 1.5])
def test_a_share_outside_0_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        derive_cutoff(snapshot_of([(0, 0)], 1), share)


def test_few_shoppers_on_both_sides_of_the_cutoff_is_refused_with_the_numbers() -> None:
    # 12 shoppers buy before and after day 50; 60 more buy only before.
    baskets = [(u, d) for u in range(12) for d in (10, 60)]
    baskets += [(u, 5 + u % 40) for u in range(12, 72)]
    split = temporal_split(snapshot_of(baskets, 72), START + timedelta(days=50), seed=0)
    assert len(split.validation) + len(split.test) == 12
    with pytest.raises(TooLittleData) as caught:
        check_enough(split)
    message = str(caught.value)
    assert message.startswith("12 shoppers have a basket before and after the cutoff 2023-02-20")
    assert f"at least {MIN_SHOPPERS_PER_HALF} in each half" in message


def test_few_training_baskets_is_refused() -> None:
    # 40 shoppers with one basket on each side: enough to evaluate, 40 < 50 to train on.
    baskets = [(u, d) for u in range(40) for d in (10, 60)]
    split = temporal_split(snapshot_of(baskets, 40), START + timedelta(days=50), seed=0)
    with pytest.raises(TooLittleData, match=r"^40 baskets lie before the cutoff"):
        check_enough(split)


def test_enough_data_passes() -> None:
    baskets = [(u, d) for u in range(40) for d in (10, 20, 60)]
    split = temporal_split(snapshot_of(baskets, 40), START + timedelta(days=50), seed=0)
    check_enough(split)
    assert len(split.train_baskets) == 80
