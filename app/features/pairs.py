"""Co-purchase statistics for item pairs, with sparse matrices.

Both kinds of pair are association rules "item -> other" over baskets (one order of one shopper):

- `basket`: the other item is in the same basket.
- `shopper_30d`: the other item is in a *later* basket of the same shopper, at most
  `WINDOW_DAYS` days after this one (strictly later time, window end included). Each basket
  looks ahead over its own window, so the window slides with the basket.

With N the number of baskets, n(a) the baskets holding item a, m(b) the baskets whose
"consequent" holds b (the basket itself for `basket`, its follow-up window for `shopper_30d`) and
c(a, b) the baskets holding a whose consequent holds b:

    support    = c(a, b) / N
    confidence = c(a, b) / n(a)          = P(b | a)
    lift       = confidence / (m(b) / N)  (1 = independent; > 1: bought together more than chance)

Pairs of an item with itself are left out (repurchase is a per-shopper feature), and so are
pairs seen in fewer than `MIN_PAIR_BASKETS` baskets, which keeps the table small and the
statistics meaningful.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp  # type: ignore[import-untyped, unused-ignore]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

WINDOW_DAYS = 30  # also in the kind's name, "shopper_30d", which the schema checks
MIN_PAIR_BASKETS = 20


@dataclass(frozen=True)
class PairStats:
    """Directed pairs item -> other, as item indices, one entry per pair."""

    item: IntArray
    other: IntArray
    baskets: IntArray
    support: FloatArray
    confidence: FloatArray
    lift: FloatArray

    def __len__(self) -> int:
        return len(self.item)


def membership(basket: IntArray, item: IntArray, n_baskets: int, n_items: int) -> "sp.csr_matrix":
    """The 0/1 basket x item matrix of (basket, item) entries, duplicates counted once."""
    matrix = sp.csr_matrix(
        (np.ones(len(basket), dtype=np.float64), (basket, item)), shape=(n_baskets, n_items)
    )
    matrix.data[:] = 1.0
    return matrix


def follow_up_windows(
    basket_user: IntArray, basket_time: IntArray, window_seconds: int
) -> "sp.csr_matrix":
    """The 0/1 basket x basket matrix whose row i marks the same shopper's baskets j with
    time(i) < time(j) <= time(i) + window. Baskets must be sorted by (shopper, time)."""
    n = len(basket_user)
    if n == 0:
        return sp.csr_matrix((0, 0), dtype=np.float64)
    # One sortable key per basket: shopper rank first, then time, so that a shopper's window
    # never reaches into the next shopper's baskets.
    shopper = np.unique(basket_user, return_inverse=True)[1].astype(np.int64)
    offset = basket_time - basket_time.min()
    key = shopper * (int(offset.max()) + window_seconds + 1) + offset
    start = np.searchsorted(key, key, side="right")
    end = np.searchsorted(key, key + window_seconds, side="right")
    counts = end - start
    indptr = np.concatenate(([0], np.cumsum(counts)))
    # Row i holds the column run start[i] .. end[i] - 1.
    columns = np.arange(indptr[-1]) - np.repeat(indptr[:-1] - start, counts)
    return sp.csr_matrix((np.ones(len(columns), dtype=np.float64), columns, indptr), shape=(n, n))


def association(
    antecedent: "sp.csr_matrix", consequent: "sp.csr_matrix", min_baskets: int
) -> PairStats:
    """Rules a -> b from 0/1 basket x item matrices: a in the basket, b in its consequent."""
    n_baskets = antecedent.shape[0]
    together = (antecedent.T @ consequent).tocoo()
    keep = (together.row != together.col) & (together.data >= min_baskets)
    item = together.row[keep].astype(np.int64)
    other = together.col[keep].astype(np.int64)
    count = np.rint(together.data[keep]).astype(np.int64)
    order = np.lexsort((other, item))
    item, other, count = item[order], other[order], count[order]
    with_item = np.asarray(antecedent.sum(axis=0)).ravel()
    with_other = np.asarray(consequent.sum(axis=0)).ravel()
    confidence = count / with_item[item]
    return PairStats(
        item=item,
        other=other,
        baskets=count,
        support=count / n_baskets,
        confidence=confidence,
        lift=confidence * n_baskets / with_other[other],
    )


def basket_pairs(
    basket: IntArray, item: IntArray, n_baskets: int, n_items: int, min_baskets: int
) -> PairStats:
    """Pairs bought in the same basket."""
    bought = membership(basket, item, n_baskets, n_items)
    return association(bought, bought, min_baskets)


def follow_up_pairs(
    basket: IntArray,
    item: IntArray,
    basket_user: IntArray,
    basket_time: IntArray,
    n_items: int,
    window_days: int,
    min_baskets: int,
) -> PairStats:
    """Pairs where the other item is bought by the same shopper within `window_days` after."""
    n_baskets = len(basket_user)
    bought = membership(basket, item, n_baskets, n_items)
    windows = follow_up_windows(basket_user, basket_time, window_days * 86_400)
    later = (windows @ bought).tocsr()
    later.data[:] = 1.0
    return association(bought, later, min_baskets)
