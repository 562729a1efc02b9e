"""`python -m app evaluate --peers`: the two-tower model and its peers on the same test split,
written to bench/results/quality.md with a bar chart."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from tqdm import tqdm

from app.serving.bundle import Bundle, BundleError
from app.train.baselines import all_peers
from app.train.data import Snapshot, load_snapshot
from app.train.fit import make_scorer
from app.train.inputs import HistoryIndex
from app.train.metrics import Metrics, Scorer, evaluate
from app.train.split import Split, temporal_split

VARIANTS = (("all items", False), ("not bought before", True))
SLICES = ("all shoppers", "cold start (<= 2 earlier baskets)")


@dataclass(frozen=True)
class ModelResult:
    name: str
    metrics: dict[tuple[str, str], Metrics]  # (slice, variant) -> metrics
    fit_seconds: float
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    split: Split
    bundle: Bundle
    results: list[ModelResult]

    def best_peer(self, variant: str) -> ModelResult:
        peers = [r for r in self.results if r.name != "two-tower"]
        return max(peers, key=lambda r: r.metrics[(SLICES[0], variant)].ndcg_10)

    def ratio(self, variant: str) -> float:
        ours = self.results[-1].metrics[(SLICES[0], variant)].ndcg_10
        return ours / self.best_peer(variant).metrics[(SLICES[0], variant)].ndcg_10


def measure(snapshot: Snapshot, split: Split, scorer: Scorer) -> dict[tuple[str, str], Metrics]:
    return {
        (slice_name, variant): evaluate(snapshot, users, scorer, new_only)
        for slice_name, users in zip(SLICES, (split.test, split.test.cold_start()), strict=True)
        for variant, new_only in VARIANTS
    }


def compare(conn: psycopg.Connection, bundle: Bundle, with_peers: bool) -> Comparison:
    snapshot = load_snapshot(conn)
    trained_on = bundle.manifest["data"]["snapshot_hash"]
    if trained_on != snapshot.content_hash:
        raise BundleError(
            f"model {bundle.version} was trained on other data ({trained_on[:12]}, the database"
            f" holds {snapshot.content_hash[:12]}); retrain with `python -m app train`"
        )
    cutoff = datetime.fromisoformat(bundle.manifest["split"]["cutoff"])
    split = temporal_split(snapshot, cutoff, seed=bundle.manifest["fit"]["seed"])
    results = []
    if with_peers:
        for peer in tqdm(all_peers(seed=0), desc="peers", unit="model"):
            started = time.perf_counter()
            peer.fit(split)
            seconds = time.perf_counter() - started
            results.append(ModelResult(peer.name, measure(snapshot, split, peer.score), seconds))
    scorer = make_scorer(bundle.model, bundle.item_side, HistoryIndex(snapshot))
    fit_seconds = float(bundle.manifest["fit"]["seconds"])
    results.append(ModelResult("two-tower", measure(snapshot, split, scorer), fit_seconds))
    return Comparison(split, bundle, results)


def write_report(comparison: Comparison, path: Path, machine: str, command: str) -> None:
    split, bundle = comparison.split, comparison.bundle
    fit = bundle.manifest["fit"]
    lines = [
        "# Ranking quality: two-tower vs peers",
        "",
        f"- Machine: {machine}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        f"- Command: `{command}`",
        f"- Model: `models/two_tower/{bundle.version}` (best epoch {fit['best_epoch']},"
        f" trained in {fit['seconds']} s)",
        f"- Data: snapshot `{split.snapshot.content_hash[:12]}`, {split.snapshot.n_items:,} items,"
        f" {split.snapshot.n_baskets:,} baskets; train before {split.cutoff:%Y-%m-%d},"
        f" {len(split.train_baskets):,} training baskets; each evaluated shopper's next basket"
        f" after it: {len(split.validation):,} validation and {len(split.test):,} test shoppers.",
        "- Full ranking over every item of the catalog (no sampled negatives). Figures are on the"
        " test shoppers; nothing was tuned on them.",
        "",
    ]
    for variant, _ in VARIANTS if len(comparison.results) > 1 else ():
        best = comparison.best_peer(variant)
        lines.append(
            f"**{variant}: two-tower NDCG@10 / best peer ({best.name}) ="
            f" {comparison.ratio(variant):.3f}** (goal >= 1.10)  "
        )
    lines.append("")
    for slice_name in SLICES:
        for variant, _ in VARIANTS:
            lines += [
                f"## {slice_name}, {variant}",
                "",
                "| model | Recall@10 | Recall@20 | NDCG@10 | HitRate@10 | Coverage@10 | shoppers |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            ]
            for result in comparison.results:
                m = result.metrics[(slice_name, variant)]
                name = f"**{result.name}**" if result.name == "two-tower" else result.name
                lines.append(
                    f"| {name} | {m.recall_10:.4f} | {m.recall_20:.4f} | {m.ndcg_10:.4f} |"
                    f" {m.hit_10:.4f} | {m.coverage_10:.4f} | {m.users:,} |"
                )
            lines.append("")
    lines += ["## Fit time", "", "| model | seconds |", "| --- | ---: |"]
    lines += [f"| {r.name} | {r.fit_seconds:.0f} |" for r in comparison.results]
    lines += ["", f"![NDCG@10 by model]({path.stem}.png)", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    _bar_chart(comparison, path.with_suffix(".png"))


def _bar_chart(comparison: Comparison, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in comparison.results]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, (variant, _) in zip(axes, VARIANTS, strict=True):
        values = [r.metrics[(SLICES[0], variant)].ndcg_10 for r in comparison.results]
        colours = ["tab:orange" if n == "two-tower" else "tab:blue" for n in names]
        axis.barh(names, values, color=colours)
        axis.set_title(f"NDCG@10, {variant}")
        axis.invert_yaxis()
        for y, value in enumerate(values):
            axis.text(value, y, f" {value:.3f}", va="center", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
