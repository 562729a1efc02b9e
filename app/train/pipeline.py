"""`python -m app train`: snapshot -> split -> fit -> test metrics -> model bundle."""

import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from app.serving.bundle import save_bundle
from app.train.data import FloatArray, ItemSide, Snapshot, load_item_side, load_snapshot
from app.train.fit import FitResult, FitSettings, fit_two_tower, make_scorer, sequence_spec
from app.train.inputs import HistoryIndex
from app.train.metrics import evaluate
from app.train.split import EVALUATION_SHARE, Split, check_enough, derive_cutoff, temporal_split

POPULARITY_WINDOW = timedelta(days=90)


@dataclass(frozen=True)
class TrainReport:
    path: Path
    fit: FitResult
    test: dict[str, dict[str, float]]
    seconds: float
    cutoff: datetime
    cutoff_from: str  # "given", or the rule that derived it
    inputs_chosen: str  # why the model reads the events it reads


def recent_popularity(snapshot: Snapshot, until: int) -> FloatArray:
    """(n_countries, n_items) baskets holding each item in the window before `until`, per
    country; row 0 counts everyone. A country's row adds everyone's counts / 1000 so that thin
    countries fall back to the global order."""
    in_window = (snapshot.basket_time >= until - POPULARITY_WINDOW.total_seconds()) & (
        snapshot.basket_time < until
    )
    counts = np.zeros((len(snapshot.countries), snapshot.n_items), dtype=np.float32)
    for basket in np.flatnonzero(in_window):
        country = snapshot.user_country[snapshot.basket_user[basket]]
        counts[country, snapshot.items_of(int(basket))] += 1
    everyone = counts.sum(axis=0)
    counts[0] = everyone
    counts[1:] += everyone / 1000
    return counts


def test_metrics(
    split: Split, side: ItemSide, fit: FitResult, history: HistoryIndex
) -> dict[str, dict[str, float]]:
    scorer = make_scorer(fit.model, side, history)
    results: dict[str, dict[str, float]] = {}
    for slice_name, users in (("all", split.test), ("cold_start", split.test.cold_start())):
        for variant, new_only in (("all_items", False), ("not_bought_before", True)):
            metrics = evaluate(split.snapshot, users, scorer, new_only)
            results[f"{slice_name}/{variant}"] = metrics.as_dict()
    return results


def train(
    conn: psycopg.Connection,
    models_dir: Path,
    cutoff: datetime | None,
    settings: FitSettings,
    evaluation_share: float = EVALUATION_SHARE,
    compare_inputs: bool = True,
) -> TrainReport:
    """Without a cutoff, the last `evaluation_share` of the baskets are evaluation time. Raises
    TooLittleData (before any fitting) when the split can't train and evaluate a model. With
    `compare_inputs`, a shop with views, clicks or carts also fits a purchases-only model, and
    validation picks one."""
    started = time.perf_counter()
    snapshot = load_snapshot(conn)
    cutoff_from = "given"
    if cutoff is None:
        cutoff = derive_cutoff(snapshot, evaluation_share)
        cutoff_from = f"the last {evaluation_share:.0%} of the baskets"
    split = temporal_split(snapshot, cutoff, seed=settings.seed)
    check_enough(split)
    side = load_item_side(conn, snapshot.item_skus)
    fit = fit_two_tower(split, side, settings)
    inputs_chosen = "purchases only: the shop has no other events"
    if sequence_spec(snapshot, settings).events_per_type and not compare_inputs:
        inputs_chosen = "given"
    elif sequence_spec(snapshot, settings).events_per_type:
        # Whether views, clicks and carts help is the shop's to say: validation decides.
        purchases_only = replace(settings, events_per_type=0)
        other = fit_two_tower(split, side, purchases_only)
        with_events, without = fit.validation["objective"], other.validation["objective"]
        inputs_chosen = (
            f"validation objective {with_events:.4f} with other events,"
            f" {without:.4f} with purchases only"
        )
        if without > with_events:
            fit, settings = other, purchases_only
    spec = sequence_spec(snapshot, settings)
    test = test_metrics(split, side, fit, HistoryIndex(snapshot, spec))
    manifest: dict[str, Any] = {
        "data": {
            "snapshot_hash": snapshot.content_hash,
            "items": snapshot.n_items,
            "users": snapshot.n_users,
            "baskets": snapshot.n_baskets,
            "other_events": len(snapshot.event_item),
            "first_basket_at": datetime.fromtimestamp(
                int(snapshot.basket_time.min()), UTC
            ).isoformat(),
            "last_basket_at": datetime.fromtimestamp(
                int(snapshot.basket_time.max()), UTC
            ).isoformat(),
        },
        "split": {
            "cutoff": cutoff.isoformat(),
            "cutoff_from": cutoff_from,
            "train_baskets": len(split.train_baskets),
            "validation_users": len(split.validation),
            "test_users": len(split.test),
        },
        # What the user tower reads: serving builds the same sequence from this.
        "inputs": spec.as_manifest() | {"chosen_by": inputs_chosen},
        "fit": asdict(settings) | {"best_epoch": fit.best_epoch, "seconds": round(fit.seconds)},
        "metrics": {"validation": fit.validation, "test": test},
        "history": fit.history,
    }
    # Popularity as of the end of the data: what serving falls back to for unknown shoppers.
    popular = recent_popularity(snapshot, int(snapshot.basket_time.max()) + 1)
    path = save_bundle(
        models_dir / "two_tower", fit.model, snapshot.item_skus, side, snapshot.countries,
        popular, manifest,
    )  # fmt: skip
    return TrainReport(
        path, fit, test, time.perf_counter() - started, cutoff, cutoff_from, inputs_chosen
    )
