"""Bootstrap intervals over shoppers, and the paired comparison of two models."""

import math

import numpy as np
import pytest

from app.train.metrics import MEAN_METRICS, Metrics, paired_difference


def metrics_of(ndcg: np.ndarray) -> Metrics:
    """Metrics whose every averaged column is `ndcg` (one value per shopper)."""
    n = len(ndcg)
    per_shopper = np.repeat(ndcg[:, None], len(MEAN_METRICS), axis=1).astype(np.float64)
    mean = float(ndcg.mean()) if n else 0.0
    return Metrics(
        recall_10=mean,
        recall_20=mean,
        ndcg_10=mean,
        hit_10=mean,
        coverage_10=0.5,
        users=n,
        shoppers=np.arange(n, dtype=np.int64),
        per_shopper=per_shopper,
    )


def test_the_interval_of_a_hit_rate_matches_its_sampling_error() -> None:
    hits = (np.random.default_rng(5).random(400) < 0.3).astype(np.float64)
    interval = metrics_of(hits).intervals["hit@10"]
    assert hits.mean() in interval
    # The normal approximation: 1.96 * sqrt(p (1 - p) / n) either side, about 0.045.
    half_width = 1.96 * math.sqrt(hits.mean() * (1 - hits.mean()) / 400)
    assert interval.high - interval.low == pytest.approx(2 * half_width, rel=0.15)


def test_more_shoppers_give_a_narrower_interval_and_the_same_seed_the_same_one() -> None:
    rng = np.random.default_rng(1)
    few, many = rng.random(50), rng.random(2000)
    narrow, wide = metrics_of(many).intervals["ndcg@10"], metrics_of(few).intervals["ndcg@10"]
    assert narrow.high - narrow.low < (wide.high - wide.low) / 3
    assert metrics_of(few).intervals == metrics_of(few.copy()).intervals


def test_coverage_has_no_interval_and_means_have_theirs_in_the_dict() -> None:
    """Coverage counts the distinct items of all lists: a resample shows fewer, so a shopper
    bootstrap would put its interval below the figure."""
    metrics = metrics_of(np.random.default_rng(2).random(30))
    assert "coverage@10" not in metrics.intervals
    summary = metrics.as_dict()
    assert summary["coverage@10"] == 0.5
    assert "coverage@10 low" not in summary
    assert summary["ndcg@10 low"] <= summary["ndcg@10"] <= summary["ndcg@10 high"]


def test_no_shoppers_no_interval() -> None:
    metrics = metrics_of(np.zeros(0))
    assert math.isnan(metrics.intervals["ndcg@10"].low)
    assert "ndcg@10 low" not in metrics.as_dict()
    difference = paired_difference(metrics, metrics, "ndcg@10")
    assert not difference.distinguishable


def test_a_small_lift_on_every_shopper_is_distinguishable_paired() -> None:
    """Both models share the spread between shoppers: their intervals overlap widely, yet one is
    better for every shopper, which only the paired comparison sees."""
    base = np.random.default_rng(3).random(100)
    ours, theirs = metrics_of(base + 0.02), metrics_of(base)
    a, b = ours.intervals["ndcg@10"], theirs.intervals["ndcg@10"]
    assert a.low < b.high  # the intervals overlap
    difference = paired_difference(ours, theirs, "ndcg@10")
    assert difference.mean == pytest.approx(0.02)
    assert difference.distinguishable
    assert difference.interval.low == pytest.approx(0.02)


def test_equal_models_and_noise_are_not_distinguishable() -> None:
    rng = np.random.default_rng(4)
    base = rng.random(200)
    same = paired_difference(metrics_of(base), metrics_of(base.copy()), "ndcg@10")
    assert same.mean == 0
    assert not same.distinguishable
    noisy = paired_difference(
        metrics_of(base + rng.normal(0, 0.2, 200)), metrics_of(base), "recall@10"
    )
    assert noisy.interval.low < 0 < noisy.interval.high
    assert not noisy.distinguishable


def test_pairing_needs_the_same_shoppers() -> None:
    other = metrics_of(np.ones(5))
    moved = Metrics(**{**vars(other), "shoppers": np.arange(1, 6, dtype=np.int64)})
    with pytest.raises(ValueError, match="same shoppers"):
        paired_difference(other, moved, "ndcg@10")
