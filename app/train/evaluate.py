"""`python -m app evaluate --peers`: the two-tower model and its peers on the same test split,
written to bench/results/quality.md (one section per shop) with a bar chart."""

import math
import re
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
from app.train.metrics import RESAMPLES, Metrics, Scorer, evaluate, paired_difference
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
    scorer = make_scorer(bundle.model, bundle.item_side, HistoryIndex(snapshot, bundle.inputs))
    fit_seconds = float(bundle.manifest["fit"]["seconds"])
    results.append(ModelResult("two-tower", measure(snapshot, split, scorer), fit_seconds))
    return Comparison(split, bundle, results)


TITLE = "Ranking quality: two-tower vs peers"
COLUMNS = (
    ("Recall@10", "recall@10"),
    ("Recall@20", "recall@20"),
    ("NDCG@10", "ndcg@10"),
    ("HitRate@10", "hit@10"),
    ("Coverage@10", "coverage@10"),
)


def _cell(metrics: Metrics, metric: str) -> str:
    interval = metrics.intervals.get(metric)  # none for coverage, nor without shoppers
    if interval is None or math.isnan(interval.low):
        return f"{metrics.value(metric):.4f}"
    return f"{metrics.value(metric):.4f} [{interval.low:.4f}, {interval.high:.4f}]"


def _verdict(ours: Metrics, peer: Metrics) -> str:
    """Two-tower minus the peer on NDCG@10, paired over the same shoppers."""
    difference = paired_difference(ours, peer, "ndcg@10")
    low, high = difference.interval.low, difference.interval.high
    if not difference.distinguishable:
        word = "not distinguishable"
    else:
        word = "two-tower better" if difference.mean > 0 else "two-tower worse"
    return f"{difference.mean:+.4f} [{low:+.4f}, {high:+.4f}]: {word}"


def report_section(comparison: Comparison, machine: str, command: str, title: str) -> str:
    """The report of one shop as a top-level markdown section titled `title`."""
    split, bundle = comparison.split, comparison.bundle
    fit = bundle.manifest["fit"]
    cutoff_from = bundle.manifest["split"].get("cutoff_from", "given")
    lines = [
        f"# {title}",
        "",
        f"- Machine: {machine}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        f"- Command: `{command}`",
        f"- Model: `models/two_tower/{bundle.version}` (best epoch {fit['best_epoch']},"
        f" trained in {fit['seconds']} s)",
        f"- Data: snapshot `{split.snapshot.content_hash[:12]}`, {split.snapshot.n_items:,} items,"
        f" {split.snapshot.n_baskets:,} baskets; train before {split.cutoff:%Y-%m-%d %H:%M} UTC"
        f" ({cutoff_from}), {len(split.train_baskets):,} training baskets; each evaluated"
        f" shopper's next basket after it: {len(split.validation):,} validation and"
        f" {len(split.test):,} test shoppers.",
        "- Full ranking over every item of the catalog (no sampled negatives). Figures are on the"
        " test shoppers; nothing was tuned on them. In brackets: 95% bootstrap intervals over the"
        f" test shoppers ({RESAMPLES:,} resamples, seeded; none for coverage, a count over all"
        " lists that resampling biases down). *vs two-tower*: two-tower's NDCG@10"
        " minus the peer's, paired over the same resamples; not distinguishable when its"
        " interval holds 0.",
        "",
    ]
    ours = comparison.results[-1]
    for variant, _ in VARIANTS if len(comparison.results) > 1 else ():
        best = comparison.best_peer(variant)
        verdict = _verdict(ours.metrics[(SLICES[0], variant)], best.metrics[(SLICES[0], variant)])
        lines.append(
            f"**{variant}: two-tower NDCG@10 / best peer ({best.name}) ="
            f" {comparison.ratio(variant):.3f}**; difference {verdict}  "
        )
    lines.append("")
    header = " | ".join(name for name, _ in COLUMNS)
    for slice_name in SLICES:
        for variant, _ in VARIANTS:
            lines += [
                f"## {slice_name}, {variant}",
                "",
                f"| model | {header} | shoppers | vs two-tower (NDCG@10) |",
                f"| --- |{' ---: |' * len(COLUMNS)} ---: | --- |",
            ]
            mine = ours.metrics[(slice_name, variant)]
            for result in comparison.results:
                m = result.metrics[(slice_name, variant)]
                is_ours = result is ours
                name = f"**{result.name}**" if is_ours else result.name
                cells = " | ".join(_cell(m, metric) for _, metric in COLUMNS)
                versus = "" if is_ours else _verdict(mine, m)
                lines.append(f"| {name} | {cells} | {m.users:,} | {versus} |")
            lines.append("")
    lines += ["## Fit time", "", "| model | seconds |", "| --- | ---: |"]
    lines += [f"| {r.name} | {r.fit_seconds:.0f} |" for r in comparison.results]
    return "\n".join(lines)


def write_report(
    comparison: Comparison, path: Path, machine: str, command: str, shop: str | None = None
) -> None:
    """Write (or replace) this shop's section of the report, keeping the other shops' sections;
    its bar chart goes next to it."""
    title = TITLE if shop is None else f"{TITLE}: {shop}"
    slug = "" if shop is None else "_" + re.sub(r"[^a-z0-9]+", "_", shop.lower()).strip("_")
    chart = path.with_name(f"{path.stem}{slug}.png")
    section = report_section(comparison, machine, command, title)
    section += f"\n\n![NDCG@10 by model]({chart.name})\n"
    sections = _sections(path.read_text()) if path.is_file() else {}
    sections[f"# {title}"] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text.rstrip("\n") + "\n" for text in sections.values()))
    _bar_chart(comparison, chart)


def _sections(text: str) -> dict[str, str]:
    """A markdown file's top-level sections by heading line, in file order."""
    sections: dict[str, str] = {}
    heading = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("# "):
            heading = line.rstrip("\n")
        sections[heading] = sections.get(heading, "") + line
    return sections


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
