"""A tiny real-data training run: features -> train -> save -> load -> same scores, and the
three cold-start paths (new item, session-only shopper, shopper with nothing)."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
import torch

from app.db.engine import libpq_url
from app.serving.bundle import Bundle, latest_version, load_bundle
from app.serving.catalog import NewItems
from app.serving.retriever import Retriever, top_k
from app.text_embedding import embed_titles
from app.train.fit import FitSettings, make_scorer
from app.train.inputs import HistoryIndex
from app.train.pipeline import TrainReport, train
from tests.conftest import TINY_CUTOFF, TinyWorld

CUTOFF = TINY_CUTOFF


@pytest.fixture(scope="module")
def trained(tiny_world: TinyWorld) -> Iterator[tuple[TrainReport, Bundle, psycopg.Connection]]:
    """Two months of real orders, ingested, featurised and trained for two epochs."""
    with psycopg.connect(libpq_url(tiny_world.database_url), autocommit=True) as conn:
        bundle = load_bundle(latest_version(tiny_world.models_dir / "two_tower"))
        yield tiny_world.report, bundle, conn


def test_bundle_is_self_contained_and_described(
    trained: tuple[TrainReport, Bundle, psycopg.Connection],
) -> None:
    report, bundle, _ = trained
    assert {p.name for p in report.path.iterdir()} == {
        "weights.safetensors", "items.safetensors", "id_maps.json", "manifest.json",
    }  # fmt: skip
    manifest = bundle.manifest
    assert manifest["split"]["cutoff"] == CUTOFF.isoformat()
    assert len(manifest["data"]["snapshot_hash"]) == 64
    assert manifest["metrics"]["test"]["all/all_items"]["users"] > 0
    assert manifest["fit"]["seed"] == 0
    assert manifest["code_version"]


def test_saved_and_loaded_model_scores_the_same(
    trained: tuple[TrainReport, Bundle, psycopg.Connection],
) -> None:
    report, bundle, conn = trained
    from app.train.data import load_item_side, load_snapshot
    from app.train.split import temporal_split

    snapshot = load_snapshot(conn)
    side = load_item_side(conn, snapshot.item_skus)
    users = temporal_split(snapshot, CUTOFF).test
    before = make_scorer(report.fit.model, side, HistoryIndex(snapshot))(users)
    after = make_scorer(bundle.model, bundle.item_side, HistoryIndex(snapshot))(users)
    np.testing.assert_allclose(before, after, rtol=1e-5, atol=1e-5)


def test_new_item_with_only_a_title_gets_a_useful_vector(
    trained: tuple[TrainReport, Bundle, psycopg.Connection],
) -> None:
    _, bundle, _ = trained
    lunch_bags = [n for n, sku in enumerate(bundle.item_skus) if sku in ("20725", "20727", "20728")]
    assert lunch_bags, "the sample holds the lunch bags"
    theme = bundle.item_side.themes[int(bundle.item_side.theme[lunch_bags[0]])]
    title = embed_titles(["Lunch Bag Blue Polkadot Design"])
    retriever = Retriever(bundle, NewItems(title, [theme], [None]))
    vector = retriever.vectors[bundle.n_items]  # the new item follows the bundle's
    assert retriever.vectors.shape == (bundle.n_items + 1, bundle.item_vectors.shape[1])
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    nearest = retriever.nearest_items(vector, 10).tolist()
    assert set(nearest) & set(lunch_bags)


def test_session_only_shopper_gets_recommendations_from_the_session(
    trained: tuple[TrainReport, Bundle, psycopg.Connection],
) -> None:
    _, bundle, _ = trained
    retriever = Retriever(bundle)
    now = int(CUTOFF.timestamp())
    session = np.asarray([bundle.item_skus.index("22383")], dtype=np.int64)
    scores = retriever.score_session(session, "United Kingdom", now)
    other = retriever.score_session(
        np.asarray([bundle.item_skus.index("22633")], dtype=np.int64), "United Kingdom", now
    )
    assert scores.shape == (bundle.n_items,)
    assert np.isfinite(scores).all()
    # Recommendations depend on what is in the session.
    assert top_k(scores, 10).tolist() != top_k(other, 10).tolist()


def test_shopper_with_nothing_gets_popular_in_country(
    trained: tuple[TrainReport, Bundle, psycopg.Connection],
) -> None:
    _, bundle, conn = trained
    retriever = Retriever(bundle)
    top_french = bundle.item_skus[top_k(retriever.popular_in_country("France"), 1)[0]]
    baskets_in_france: dict[str, int] = dict(
        conn.execute(
            "SELECT it.sku, count(DISTINCT i.order_id) FROM interaction i"
            " JOIN app_user u ON u.id = i.user_id JOIN item it ON it.id = i.item_id"
            " WHERE u.country = 'France' GROUP BY it.sku"
        ).fetchall()
    )
    # The sample spans two months, all inside the 90-day popularity window.
    assert baskets_in_france[top_french] == max(baskets_in_france.values())
    unknown = retriever.popular_in_country("Atlantis")
    assert np.array_equal(unknown, bundle.popular[0])


def test_same_seed_same_model(
    trained: tuple[TrainReport, Bundle, psycopg.Connection], tmp_path: Path
) -> None:
    report, _, conn = trained
    again = train(conn, tmp_path, CUTOFF, FitSettings(seed=0, max_epochs=2))
    for name, metrics in report.test.items():
        assert again.test[name]["ndcg@10"] == pytest.approx(metrics["ndcg@10"], abs=0.002)
    for key, value in report.fit.model.state_dict().items():
        assert torch.allclose(value, again.fit.model.state_dict()[key])
