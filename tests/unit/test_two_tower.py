"""The model's pure parts: tower shapes, padding masks, the loss, the metrics."""

import math

import numpy as np
import pytest
import torch

from app.train.inputs import REPEAT_SLOTS, SEQUENCE_LENGTH, day_bucket, shopper_row, stack
from app.train.losses import inclusion_log_q, sampled_softmax_loss
from app.train.metrics import hit_at, ndcg_at, recall_at
from app.train.two_tower import TwoTower, TwoTowerConfig

N_ITEMS = 30
DAY = 86_400


@pytest.fixture
def model() -> TwoTower:
    torch.manual_seed(0)
    net = TwoTower(TwoTowerConfig(n_items=N_ITEMS, n_themes=3, n_price_bands=4, n_countries=5))
    return net.eval()


def item_inputs() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    return (
        torch.randn(N_ITEMS, 384, generator=generator),
        torch.randint(0, 3, (N_ITEMS,), generator=generator),
        torch.randint(0, 4, (N_ITEMS,), generator=generator),
        torch.ones(N_ITEMS, dtype=torch.bool),
    )


def user_inputs(history: list[int], now: int = 100 * DAY) -> dict[str, torch.Tensor]:
    items = np.asarray(history, dtype=np.int64)
    times = np.arange(len(items), dtype=np.int64) * DAY
    baskets = times.copy()
    row = shopper_row(items, times, baskets, country=2, now=now, n_items=N_ITEMS)
    return {k: torch.from_numpy(v) for k, v in vars(stack([row])).items()}


def user_vector(model: TwoTower, history: list[int]) -> torch.Tensor:
    vectors = model.item_vectors(*item_inputs())
    t = user_inputs(history)
    return model.user_vectors(vectors, t)


def test_item_vectors_are_unit_rows_plus_a_zero_padding_row(model: TwoTower) -> None:
    vectors = model.item_vectors(*item_inputs())
    assert vectors.shape == (N_ITEMS + 1, model.config.dim)
    assert torch.allclose(vectors[:-1].norm(dim=1), torch.ones(N_ITEMS), atol=1e-5)
    assert torch.count_nonzero(vectors[-1]) == 0


def test_inputs_left_pad_the_sequence() -> None:
    t = user_inputs([3, 4, 5])
    assert t["sequence"].shape == (1, SEQUENCE_LENGTH)
    assert t["sequence"][0, -3:].tolist() == [3, 4, 5]
    assert (t["sequence"][0, :-3] == N_ITEMS).all()
    assert t["repeat_items"].shape == (1, REPEAT_SLOTS)
    assert sorted(t["repeat_items"][0, :3].tolist()) == [3, 4, 5]


def test_padding_is_masked(model: TwoTower) -> None:
    """Whatever sits in padded positions (gap buckets here) must not change the output."""
    vectors = model.item_vectors(*item_inputs())
    t = user_inputs([3, 4, 5])
    base = model.user_vectors(vectors, t)
    gaps = t["sequence_gap"].clone()
    gaps[0, :-3] = 7
    changed = model.user_vectors(vectors, {**t, "sequence_gap": gaps})
    assert torch.allclose(base, changed, atol=1e-6)
    assert base.shape == (1, model.config.dim)
    assert torch.allclose(base.norm(dim=1), torch.ones(1), atol=1e-5)


def test_attention_is_causal_and_history_matters(model: TwoTower) -> None:
    assert not torch.allclose(user_vector(model, [3, 4, 5]), user_vector(model, [3, 4, 6]))


def test_empty_history_still_gives_a_vector(model: TwoTower) -> None:
    vector = user_vector(model, [])
    assert torch.isfinite(vector).all()


def test_repeat_bonus_only_for_items_bought_before(model: TwoTower) -> None:
    vectors = model.item_vectors(*item_inputs())
    t = user_inputs([3, 4, 4])
    users = model.user_vectors(vectors, t)
    bonus = model.repeat_bonus(
        vectors, users, t["repeat_items"], t["repeat_count"], t["repeat_recency"],
        t["repeat_share"],
    )  # fmt: skip
    assert bonus.shape == (1, N_ITEMS + 1)
    nonzero = set(torch.nonzero(bonus[0]).flatten().tolist())
    assert nonzero <= {3, 4}
    assert nonzero


def test_day_buckets() -> None:
    assert day_bucket(np.asarray([0, DAY, 3 * DAY, 7 * DAY])).tolist() == [0, 1, 2, 3]


def test_sampled_softmax_with_log_q_matches_a_hand_computed_case() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    positives = torch.tensor([[True, False, True]])
    log_q = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    # corrected logits: 2 - ln .5, 1 - ln .25, 0 - ln .25
    corrected = [2 + math.log(2), 1 + math.log(4), math.log(4)]
    normaliser = math.log(sum(math.exp(x) for x in corrected))
    expected = -((corrected[0] - normaliser) + (corrected[2] - normaliser)) / 2
    loss = sampled_softmax_loss(logits, positives, log_q)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_log_q_counts_in_batch_and_uniform_draws() -> None:
    frequency = torch.tensor([0.5, 0.3, 0.2, 0.0])
    log_q = inclusion_log_q(frequency, torch.tensor([0, 3]), positive_draws=10, uniform=8)
    # expected draws: item 0: 10 * 0.5 + 8 / 4 = 7; item 3: 0 + 2 = 2 (Poisson: P(in) = 1 - e^-x)
    expected = torch.tensor([1 - math.exp(-7), 1 - math.exp(-2)])
    assert torch.allclose(log_q, torch.log(expected), atol=1e-6)


def test_metrics_against_hand_computed_values() -> None:
    ranked = np.asarray([5, 1, 9, 2, 7, 3, 4, 8, 6, 0, 11, 12])
    target = {1, 2, 11}
    assert recall_at(ranked, target, 10) == pytest.approx(2 / 3)
    assert recall_at(ranked, target, 20) == pytest.approx(1.0)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(ranked, target, 10) == pytest.approx(dcg / ideal)
    assert hit_at(ranked, target, 10) == 1.0
    assert hit_at(ranked, {99}, 10) == 0.0


@pytest.mark.parametrize("length", [0, 1, 3, SEQUENCE_LENGTH + 5])
def test_scores_are_finite_at_inference_for_any_history_length(
    model: TwoTower, length: int
) -> None:
    """Left padding with a causal mask must never leave a fully masked attention row (NaN)."""
    vectors = model.item_vectors(*item_inputs()).detach()
    t = user_inputs(list(np.arange(length) % N_ITEMS))
    with torch.inference_mode():
        scores = model.scores(vectors, t)
    assert torch.isfinite(scores).all()
