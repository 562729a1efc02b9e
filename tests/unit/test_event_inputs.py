"""Views, clicks and add-to-carts in the user tower's sequence: the visit rule (nothing of the
visit being predicted), the last N per type, event types on the tokens, and models from before
(no inputs in the manifest) unchanged."""

import numpy as np
import pytest
import torch

from app.train.data import EVENT_TYPES, Snapshot
from app.train.inputs import (
    SEQUENCE_LENGTH,
    Events,
    HistoryIndex,
    SequenceSpec,
    shopper_row,
    stack,
    visit_start,
)
from app.train.two_tower import TwoTower, TwoTowerConfig

HOUR, DAY = 3600, 86_400
N_ITEMS = 20
CART, CLICK, VIEW = (EVENT_TYPES.index(name) for name in ("add_to_cart", "click", "view"))


def ints(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def test_a_visit_goes_back_while_gaps_are_short() -> None:
    gap = HOUR
    assert visit_start(ints(), 100 * HOUR, gap) == 100 * HOUR
    assert visit_start(ints(10 * HOUR), 100 * HOUR, gap) == 100 * HOUR  # long ago: a new visit
    # 97:30 -> 98:10 -> 99:00 -> 99:50 (now) are one visit; 95:00 is another.
    activity = ints(95 * HOUR, 97 * HOUR + 1800, 98 * HOUR + 600, 99 * HOUR)
    assert visit_start(activity, 99 * HOUR + 3000, gap) == 97 * HOUR + 1800
    # A gap of exactly the limit ends a visit.
    assert visit_start(ints(0, HOUR), 2 * HOUR, gap) == 2 * HOUR


def test_spec_lengths_and_manifest_round_trip() -> None:
    assert SequenceSpec().length == SEQUENCE_LENGTH
    spec = SequenceSpec(events_per_type=5, visit_gap_s=30 * 60)
    assert spec.length == SEQUENCE_LENGTH + 15
    manifest = {"inputs": spec.as_manifest()}
    assert manifest["inputs"]["sequence_events"] == list(EVENT_TYPES)
    assert SequenceSpec.from_manifest(manifest) == spec
    # A bundle from before events were read has no inputs: purchases only.
    assert SequenceSpec.from_manifest({}) == SequenceSpec()
    assert SequenceSpec().as_manifest()["sequence_events"] == ["purchase"]
    with pytest.raises(ValueError, match="unknown sequence events"):
        SequenceSpec.from_manifest({"inputs": {**spec.as_manifest(), "sequence_events": ["x"]}})


def test_events_join_the_sequence_in_time_order_with_their_types() -> None:
    spec = SequenceSpec(events_per_type=2)
    now = 10 * DAY
    purchases, purchase_times = ints(1, 2), ints(1 * DAY, 5 * DAY)
    # Three views (only the last two kept), a click between the purchases, a cart after them.
    events = Events(
        items=ints(7, 8, 3, 9, 4), times=ints(0, 2 * DAY, 3 * DAY, 4 * DAY, 6 * DAY),
        types=ints(VIEW, VIEW, CLICK, VIEW, CART),
    )  # fmt: skip
    row = stack(
        [shopper_row(purchases, purchase_times, purchase_times, 0, now, N_ITEMS, events, spec)]
    )
    assert row.sequence.shape == (1, spec.length)
    real = row.sequence[0] != N_ITEMS
    assert row.sequence[0, real].tolist() == [1, 8, 3, 9, 2, 4]
    assert row.sequence_event[0, real].tolist() == [0, VIEW, CLICK, VIEW, 0, CART]
    assert (row.sequence_event[0, ~real] == 0).all()
    # Purchases alone decide what the shopper "bought": the repeat slots hold no viewed item.
    assert set(row.repeat_items[0].tolist()) - {N_ITEMS} == {1, 2}


def test_a_purchases_only_spec_ignores_events() -> None:
    items, times = ints(1, 2, 3), ints(DAY, 2 * DAY, 3 * DAY)
    events = Events(ints(5), ints(2 * DAY), ints(VIEW))
    with_events = shopper_row(items, times, times, 0, 4 * DAY, N_ITEMS, events, SequenceSpec())
    without = shopper_row(items, times, times, 0, 4 * DAY, N_ITEMS)
    for a, b in zip(with_events, without, strict=True):
        np.testing.assert_array_equal(a, b)


def snapshot_with_events() -> Snapshot:
    """One shopper: a basket on day 1, a browsing visit on day 3, and on day 5 a visit that
    views and carts item 6 and buys it 20 minutes later."""
    t1, t5 = 1 * DAY, 5 * DAY
    return Snapshot(
        item_skus=[f"i{n}" for n in range(N_ITEMS)], user_external_ids=["u"],
        user_country=ints(0), countries=[""], basket_user=ints(0, 0),
        basket_time=ints(t1, t5 + 1200), basket_offsets=ints(0, 1, 2), basket_items=ints(1, 6),
        basket_quantity=ints(1, 1), user_offsets=ints(0, 2), content_hash="x",
        event_item=ints(4, 5, 6, 6), event_time=ints(3 * DAY, 3 * DAY + 60, t5, t5 + 600),
        event_type=ints(VIEW, CLICK, VIEW, CART), event_offsets=ints(0, 4),
    )  # fmt: skip


def test_training_sees_no_event_of_the_visit_it_predicts() -> None:
    snapshot = snapshot_with_events()
    history = HistoryIndex(snapshot, SequenceSpec(events_per_type=3))
    target = int(snapshot.basket_time[1])
    events = history.events_before_visit(0, target)
    assert events is not None
    assert events.items.tolist() == [4, 5]  # day 3's visit; not day 5's view and cart of item 6
    row = stack([history.row(0, 0, 1, target)])
    tokens = row.sequence[0][row.sequence[0] != N_ITEMS]
    assert tokens.tolist() == [1, 4, 5]
    # After the visit, its events count.
    later = history.events_before_visit(0, target + 2 * HOUR)
    assert later is not None
    assert later.items.tolist() == [4, 5, 6, 6]
    # A purchases-only index reads no events.
    assert HistoryIndex(snapshot).events_before_visit(0, target) is None


def test_event_types_change_the_user_vector_and_padding_stays_masked() -> None:
    torch.manual_seed(0)
    config = TwoTowerConfig(
        n_items=N_ITEMS, n_themes=2, n_price_bands=2, n_countries=1, events_per_type=2
    )
    model = TwoTower(config).eval()
    generator = torch.Generator().manual_seed(1)
    vectors = model.item_vectors(
        torch.randn(N_ITEMS, 384, generator=generator), torch.zeros(N_ITEMS, dtype=torch.long),
        torch.zeros(N_ITEMS, dtype=torch.long), torch.ones(N_ITEMS, dtype=torch.bool),
    )  # fmt: skip
    spec = SequenceSpec(events_per_type=2)
    items, times = ints(1, 2), ints(DAY, 2 * DAY)

    def user(kind: int) -> torch.Tensor:
        events = Events(ints(3), ints(3 * DAY), ints(kind))
        row = stack([shopper_row(items, times, times, 0, 4 * DAY, N_ITEMS, events, spec)])
        tensors = {k: torch.from_numpy(v) for k, v in vars(row).items()}
        with torch.inference_mode():
            return model.user_vectors(vectors, tensors)

    assert not torch.allclose(user(VIEW), user(CART))
    row = stack([shopper_row(items, times, times, 0, 4 * DAY, N_ITEMS, None, spec)])
    tensors = {k: torch.from_numpy(v) for k, v in vars(row).items()}
    padded = tensors["sequence"][0] == N_ITEMS
    noisy = tensors["sequence_event"].clone()
    noisy[0, padded] = VIEW
    with torch.inference_mode():
        base = model.user_vectors(vectors, tensors)
        changed = model.user_vectors(vectors, {**tensors, "sequence_event": noisy})
    assert torch.allclose(base, changed, atol=1e-6)


def test_a_purchases_only_model_has_the_parameters_it_always_had() -> None:
    """Bundles saved before events were read load into the same state dict (no event table,
    a position table of SEQUENCE_LENGTH + 1)."""
    plain = TwoTower(TwoTowerConfig(n_items=N_ITEMS, n_themes=2, n_price_bands=2, n_countries=1))
    state = plain.state_dict()
    assert not any(key.startswith("users.event.") for key in state)
    assert state["users.position.weight"].shape[0] == SEQUENCE_LENGTH + 1
    reading = TwoTower(
        TwoTowerConfig(
            n_items=N_ITEMS, n_themes=2, n_price_bands=2, n_countries=1, events_per_type=4
        )
    )
    assert reading.state_dict()["users.position.weight"].shape[0] == SEQUENCE_LENGTH + 13
    assert reading.state_dict()["users.event.weight"].shape[0] == len(EVENT_TYPES)
