"""Co-purchase statistics on tiny hand-made baskets."""

import numpy as np
import pytest

from app.features.pairs import basket_pairs, follow_up_pairs, follow_up_windows

DAY = 86_400


def ints(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def as_dict(stats, field: str) -> dict[tuple[int, int], float]:
    return {
        (int(a), int(b)): float(v)
        for a, b, v in zip(stats.item, stats.other, getattr(stats, field), strict=True)
    }


def test_basket_pairs_support_confidence_lift() -> None:
    # Baskets: {0, 1}, {0, 1}, {0}, {2}; items 0, 1, 2.
    basket, item = ints(0, 0, 1, 1, 2, 3), ints(0, 1, 0, 1, 0, 2)
    stats = basket_pairs(basket, item, n_baskets=4, n_items=3, min_baskets=1)
    assert as_dict(stats, "baskets") == {(0, 1): 2, (1, 0): 2}
    assert as_dict(stats, "support") == {(0, 1): 0.5, (1, 0): 0.5}
    # P(1 | 0) = 2/3, P(0 | 1) = 2/2.
    assert as_dict(stats, "confidence") == pytest.approx({(0, 1): 2 / 3, (1, 0): 1.0})
    # lift = P(b | a) / P(b): (2/3) / (2/4) and 1 / (3/4).
    assert as_dict(stats, "lift") == pytest.approx({(0, 1): 4 / 3, (1, 0): 4 / 3})


def test_pairs_below_the_minimum_and_self_pairs_are_left_out() -> None:
    basket, item = ints(0, 0, 1, 1, 2, 2), ints(0, 1, 0, 1, 0, 2)
    stats = basket_pairs(basket, item, n_baskets=3, n_items=3, min_baskets=2)
    assert set(as_dict(stats, "baskets")) == {(0, 1), (1, 0)}


def test_follow_up_window_is_later_same_shopper_and_at_most_the_window() -> None:
    user = ints(7, 7, 7, 7, 9)
    time = ints(0, 0, 10 * DAY, 30 * DAY, 31 * DAY)
    windows = follow_up_windows(user, time, 30 * DAY).toarray()
    assert windows.tolist() == [
        [0, 0, 1, 1, 0],  # not the basket at the same time; day 30 is inside; not shopper 9
        [0, 0, 1, 1, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    assert follow_up_windows(user, time + 1, 30 * DAY - 1).toarray()[0].tolist() == [0, 0, 1, 0, 0]


def test_follow_up_pairs() -> None:
    # Shopper 1: day 0 {0}, day 20 {1}, day 60 {1}. Shopper 2: day 0 {0}, day 5 {0, 1}.
    basket, item = ints(0, 1, 2, 3, 4, 4), ints(0, 1, 1, 0, 0, 1)
    user, time = ints(1, 1, 1, 2, 2), ints(0, 20 * DAY, 60 * DAY, 0, 5 * DAY)
    stats = follow_up_pairs(basket, item, user, time, n_items=2, window_days=30, min_baskets=1)
    # Baskets holding 0 followed by 1 within 30 days: shopper 1 day 0, shopper 2 day 0.
    assert as_dict(stats, "baskets") == {(0, 1): 2}
    assert as_dict(stats, "support") == {(0, 1): 2 / 5}
    assert as_dict(stats, "confidence") == pytest.approx({(0, 1): 2 / 3})
    # 1 is in the window of two of the five baskets: lift = (2/3) / (2/5).
    assert as_dict(stats, "lift") == pytest.approx({(0, 1): 5 / 3})
