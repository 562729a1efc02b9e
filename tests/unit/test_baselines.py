"""The peer recommenders on a tiny hand-made shop whose answers are known."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from app.train.baselines import (
    ALS,
    BPR,
    GRU4Rec,
    GRU4RecNet,
    ItemKNN,
    MostPopular,
    PopularInCountry,
    Recommender,
    Repeat,
    SASRec,
    SASRecNet,
    SequenceNet,
    all_peers,
    cosine_similarity,
    train_step,
    training_windows,
)
from app.train.data import Snapshot
from app.train.split import EvalSet, Split, temporal_split

N_USERS, N_ITEMS = 40, 30
HISTORY_BASKETS, LATER_BASKETS = 5, 2
START, CUTOFF = datetime(2011, 1, 1, tzinfo=UTC), datetime(2011, 6, 1, tzinfo=UTC)
COUNTRY_ITEM = {1: 20, 2: 21}  # country A's shoppers love item 20, country B's item 21
UNBOUGHT = 29


def favourite(user: int) -> int:
    return user % 10


def basket(user: int, number: int, rng: np.random.Generator) -> list[int]:
    """A shopper's favourite every time; one of the always-together pairs (10, 11)...(18, 19);
    their country's item in most baskets; and a rare item 22..28 different in each basket."""
    pair = 10 + 2 * int(rng.integers(5))
    items = [favourite(user), pair, pair + 1, 22 + (user + number) % 7]
    country = 1 + user % 2
    if (country == 1 and number > 0) or (country == 2 and number % 2 == 0):
        items.append(COUNTRY_ITEM[country])
    return items


def tiny_snapshot() -> Snapshot:
    rng = np.random.default_rng(7)
    basket_user, basket_time, offsets, items = [], [], [0], []
    for user in range(N_USERS):
        days = [*range(1, 1 + HISTORY_BASKETS), *range(160, 160 + LATER_BASKETS)]
        for number, day in enumerate(days):
            basket_user.append(user)
            basket_time.append(int((START + timedelta(days=day, hours=user)).timestamp()))
            items.extend(basket(user, number, rng))
            offsets.append(len(items))
    users = np.asarray(basket_user, dtype=np.int64)
    return Snapshot(
        item_skus=[f"SKU{i}" for i in range(N_ITEMS)],
        user_external_ids=[f"C{u}" for u in range(N_USERS)],
        user_country=1 + np.arange(N_USERS, dtype=np.int64) % 2,
        countries=["", "A", "B"],
        basket_user=users,
        basket_time=np.asarray(basket_time, dtype=np.int64),
        basket_offsets=np.asarray(offsets, dtype=np.int64),
        basket_items=np.asarray(items, dtype=np.int64),
        basket_quantity=np.ones(len(items), dtype=np.int64),
        user_offsets=np.searchsorted(users, np.arange(N_USERS + 1)).astype(np.int64),
        content_hash="tiny",
    )


@pytest.fixture(scope="module")
def split() -> Split:
    return temporal_split(tiny_snapshot(), CUTOFF)


@pytest.fixture(scope="module")
def everyone(split: Split) -> EvalSet:
    """Validation and test shoppers together, in shopper order: row r is shopper r."""
    fields = ("users", "history_start", "history_end", "target_basket")
    joined = [
        np.concatenate([getattr(split.validation, f), getattr(split.test, f)]) for f in fields
    ]
    order = np.argsort(joined[0])
    return EvalSet(*(column[order] for column in joined))


def small_peers(seed: int) -> list[Recommender]:
    """all_peers with grids and epochs cut down to what a 30-item shop needs."""
    return [
        MostPopular(),
        PopularInCountry(),
        Repeat(),
        ItemKNN(),
        ALS(seed, grid=[{"factors": 8, "regularization": 1.0, "iterations": 5}]),
        BPR(
            seed,
            grid=[{"factors": 8, "learning_rate": 0.05, "regularization": 0.0, "iterations": 20}],
        ),
        SASRec(seed, max_epochs=2),
        GRU4Rec(seed, max_epochs=2),
    ]


PEER_NAMES = [peer.name for peer in small_peers(seed=0)]


@pytest.fixture(scope="module")
def fitted_peers(split: Split) -> list[Recommender]:
    peers = small_peers(seed=0)
    for peer in peers:
        peer.fit(split)
    return peers


def test_all_peers_are_the_eight_of_the_comparison() -> None:
    assert [type(p) for p in all_peers(seed=0)] == [type(p) for p in small_peers(seed=0)]
    assert len({p.name for p in all_peers(seed=0)}) == 8


def test_the_tiny_shop_splits_as_designed(split: Split, everyone: EvalSet) -> None:
    assert len(split.train_baskets) == N_USERS * HISTORY_BASKETS
    assert len(split.validation) > 5
    assert len(split.test) > 5
    assert everyone.users.tolist() == list(range(N_USERS))


def test_most_popular_ranks_the_most_bought_item_first(split: Split, everyone: EvalSet) -> None:
    peer = MostPopular()
    peer.fit(split)
    scores = peer.score(everyone)
    # Item 20 is in 4 of 5 baskets of half the shoppers, more than any other item.
    assert (scores.argmax(axis=1) == COUNTRY_ITEM[1]).all()


def test_popular_in_country_ranks_the_countrys_favourite_first(
    split: Split, everyone: EvalSet
) -> None:
    peer = PopularInCountry()
    peer.fit(split)
    top = peer.score(everyone).argmax(axis=1)
    expected = [COUNTRY_ITEM[int(c)] for c in split.snapshot.user_country[everyone.users]]
    assert top.tolist() == expected
    assert "pseudo_baskets" in peer.params


def test_repeat_ranks_the_shoppers_most_bought_item_first(split: Split, everyone: EvalSet) -> None:
    peer = Repeat()
    peer.fit(split)
    scores = peer.score(everyone)
    assert scores.argmax(axis=1).tolist() == [favourite(u) for u in everyone.users.tolist()]
    # Never-bought items rank below everything the shopper bought.
    bought_once = scores[:, 22:29].max(axis=1)
    assert (scores[:, UNBOUGHT] < bought_once).all()


def test_repeat_breaks_ties_by_recency(split: Split, everyone: EvalSet) -> None:
    peer = Repeat()
    peer.fit(split)
    scores = peer.score(everyone)
    for user in everyone.users.tolist():
        # The rare item of each history basket is bought exactly once: newest first.
        rare = [22 + (user + number) % 7 for number in range(HISTORY_BASKETS)]
        ranked = sorted(rare, key=lambda item: -scores[user, item])
        assert ranked == rare[::-1]


def test_cosine_similarity_prefers_items_bought_together() -> None:
    baskets = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]]))
    sim = cosine_similarity(baskets, neighbours=None)
    assert sim[0, 1] > sim[0, 2] > sim[0, 3] == 0.0
    assert np.diag(sim).tolist() == [0.0] * 4
    nearest = cosine_similarity(baskets, neighbours=1)
    assert np.count_nonzero(nearest, axis=1).tolist() == [1, 1, 1, 0]
    assert nearest[0, 1] == sim[0, 1]


def test_item_knn_scores_a_co_purchased_item_above_an_unrelated_one(
    split: Split, everyone: EvalSet
) -> None:
    peer = ItemKNN()
    peer.fit(split)
    scores = peer.score(everyone)
    for row in range(len(everyone)):
        first_basket = split.snapshot.items_of(int(everyone.history_start[row])).tolist()
        pair = next(item for item in first_basket if 10 <= item < 20)
        assert scores[row, pair + 1] > scores[row, UNBOUGHT] == 0.0


@pytest.mark.parametrize("index", range(8), ids=PEER_NAMES)
def test_every_peer_scores_every_item_without_the_target(
    fitted_peers: list[Recommender], everyone: EvalSet, index: int
) -> None:
    peer = fitted_peers[index]
    scores = peer.score(everyone)
    assert scores.shape == (N_USERS, N_ITEMS)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()
    other_target = EvalSet(
        everyone.users, everyone.history_start, everyone.history_end, everyone.history_start
    )
    np.testing.assert_array_equal(peer.score(other_target), scores)
    assert isinstance(peer.params, dict)


def test_training_windows_hold_each_shoppers_last_items(split: Split) -> None:
    inputs, targets = training_windows(split, 8)
    assert inputs.shape == (N_USERS, 8)
    assert targets.shape == (N_USERS, 8)
    snapshot = split.snapshot
    for user in range(N_USERS):
        history = range(int(snapshot.user_offsets[user]), int(snapshot.user_offsets[user]) + 5)
        sequence = [int(i) + 1 for b in history for i in snapshot.items_of(b)]
        assert inputs[user].tolist() == sequence[-9:-1]
        assert targets[user].tolist() == sequence[-8:]
    short, short_targets = training_windows(split, 50)  # 25 items or fewer: right-padded
    assert torch.equal(short == 0, short_targets == 0)
    assert (short[:, 0] != 0).all()
    assert (short[:, -1] == 0).all()


@pytest.mark.parametrize("build", [lambda: SASRecNet(N_ITEMS, 12), lambda: GRU4RecNet(N_ITEMS)])
def test_padding_neither_leaks_into_real_positions_nor_into_the_loss(
    build: Callable[[], SequenceNet],
) -> None:
    torch.manual_seed(0)
    net: SequenceNet = build()
    net.eval()
    real = torch.tensor([[3, 7, 5]])
    short = torch.cat([real, torch.zeros(1, 2, dtype=torch.int64)], dim=1)
    long = torch.cat([real, torch.zeros(1, 9, dtype=torch.int64)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(net(short)[:, :3], net(long)[:, :3])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
    next_items = torch.tensor([[7, 5, 9]])
    loss_short = train_step(net, optimizer, short, torch.cat([next_items, short[:, 3:]], dim=1))
    loss_long = train_step(net, optimizer, long, torch.cat([next_items, long[:, 3:]], dim=1))
    assert loss_short == pytest.approx(loss_long, rel=1e-6)


@pytest.mark.parametrize("index", [6, 7], ids=PEER_NAMES[6:])
def test_sequential_peers_train_and_are_deterministic(
    split: Split, everyone: EvalSet, fitted_peers: list[Recommender], index: int
) -> None:
    first = fitted_peers[index]
    again = small_peers(seed=0)[index]
    again.fit(split)
    np.testing.assert_array_equal(again.score(everyone), first.score(everyone))
    assert 1 <= int(first.params["best_epoch"]) <= 2
    assert not torch.are_deterministic_algorithms_enabled()  # the global switch is restored
