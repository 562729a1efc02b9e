"""`python -m app <command>`: the jobs around the service (migrate, ingest, serve)."""

import json
import logging
import os
import shlex
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import psycopg
import sqlalchemy.exc
import typer
import uvicorn
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from app.config import get_settings
from app.db.engine import ensure_database, libpq_url
from app.db.migrate import downgrade as alembic_downgrade
from app.db.migrate import upgrade
from app.ingest import FileReport, IngestError, analyze, database_has_events, ingest_file
from app.ingest.cleaning import ShopLocale
from app.train.split import EVALUATION_SHARE

INGEST_SUFFIXES = (".csv", ".csv.gz", ".xlsx")

cli = typer.Typer(
    no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False, help=__doc__
)
console = Console(stderr=True)


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Alembic revision to upgrade to.")] = "head",
) -> None:
    """Create the database if it is missing, then apply the migrations."""
    url = get_settings().database_url
    if ensure_database(url):
        console.print("created the database")
    upgrade(url, revision)
    console.print(f"schema at revision [bold]{revision}[/]")


@cli.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Alembic revision to go back to ('base': none).")],
) -> None:
    """Undo migrations down to REVISION."""
    alembic_downgrade(get_settings().database_url, revision)
    console.print(f"schema at revision [bold]{revision}[/]")


@cli.command()
def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="UCI Online Retail or generic events files [default: RECS_DATA_DIR]."),
    ] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of CSV files.")] = "utf-8",
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing when the database holds events.")
    ] = False,
) -> None:
    """Clean and bulk-load order files (.csv, .csv.gz, .xlsx); each file all or nothing."""
    settings = get_settings()
    if not paths:
        paths = sorted(p for p in settings.data_dir.glob("*") if p.name.endswith(INGEST_SUFFIXES))
        if not paths:
            console.print(
                f"[red]error:[/] no {', '.join(INGEST_SUFFIXES)} files in {settings.data_dir}"
            )
            raise typer.Exit(1)
    reports: list[FileReport] = []
    shop = ShopLocale(settings.currency, settings.locale, ZoneInfo(settings.timezone))
    # Autocommit: each file's conn.transaction() is then a real transaction, not a savepoint.
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        if if_empty and database_has_events(conn):
            console.print("the database already holds events; skipping ingest")
            return
        for path in paths:
            with _byte_progress(path) as update:
                try:
                    reports.append(
                        ingest_file(conn, path, encoding, update, shop, settings.session_gap_min)
                    )
                except IngestError as exc:
                    console.print(f"[red]error:[/] {exc}")
                    console.print(f"nothing from {path} was loaded")
                    if reports:
                        console.print(f"{len(reports)} earlier file(s) were loaded and stay")
                        _print_summary(reports)
                    raise typer.Exit(1) from None
        analyze(conn)
    _print_summary(reports)


@contextmanager
def _byte_progress(path: Path) -> Iterator[Callable[[int], None]]:
    """A progress bar over the bytes of one file (compressed bytes for .gz)."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(path.name, total=path.stat().st_size if path.is_file() else None)
        yield lambda done: bar.update(task, completed=done)


def _print_summary(reports: list[FileReport]) -> None:
    table = Table(title="ingest summary")
    for column in ("file", "format", "rows read", "kept", "new events", "already loaded",
                   "new items", "new users", "session lines", "seconds"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("file", "format") else "right")
    for r in reports:
        table.add_row(
            r.path.name, r.source_format, f"{r.rows_read:,}", f"{r.kept:,}", f"{r.new_events:,}",
            f"{r.already_loaded:,}", f"{r.new_items:,}", f"{r.new_users:,}", f"{r.sessioned:,}",
            f"{r.seconds:.1f}",
        )  # fmt: skip
    console.print(table)
    dropped = Table(title="dropped rows by reason")
    dropped.add_column("reason")
    for r in reports:
        dropped.add_column(r.path.name, justify="right")
    for reason in sorted({reason for r in reports for reason in r.dropped}):
        dropped.add_row(reason, *(f"{r.dropped[reason]:,}" for r in reports))
    console.print(dropped)


@cli.command()
def features(
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when every item has its features.")
    ] = False,
) -> None:
    """Recompute the derived feature tables (themes, price bands, co-purchase, popularity...)."""
    from app.features import (
        build_features,
    )  # torch and MiniLM load only for the commands using them

    with psycopg.connect(libpq_url(get_settings().database_url), autocommit=True) as conn:
        if if_missing and _features_complete(conn):
            console.print("features exist for every item; skipping")
            return
        report = build_features(conn, progress=lambda step: console.print(f"features: {step}"))
    table = Table(title=f"features ({sum(report.step_seconds.values()):.0f} s)")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in report.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


def _features_complete(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM item) AND NOT EXISTS (SELECT 1 FROM item it"
        " LEFT JOIN item_feature f ON f.item_id = it.id WHERE f.item_id IS NULL)"
    ).fetchone()
    return bool(row and row[0])


@cli.command()
def train(
    seed: Annotated[int, typer.Option(help="Seed for the split and the model.")] = 0,
    cutoff: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"],
            help="Train before this time (UTC) [default: where the last --evaluation-share of"
            " the baskets begin].",
        ),
    ] = None,
    evaluation_share: Annotated[
        float,
        typer.Option(
            min=0.01, max=0.99, help="Share of the baskets to evaluate on, without --cutoff."
        ),
    ] = EVALUATION_SHARE,
    max_epochs: Annotated[int, typer.Option(min=1, help="Epoch budget (cosine schedule).")] = 12,
    events_per_type: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=50,
            help="Views, clicks and add-to-carts the sequence holds: the last N of each type"
            " before the visit (0: purchases only). Unset: 10, and a shop that has them fits a"
            " purchases-only model too and keeps the one validation prefers.",
        ),
    ] = None,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when a model bundle exists.")
    ] = False,
) -> None:
    """Train the two-tower model, evaluate it on the test split and save a model bundle."""
    from app.serving.bundle import BundleError, latest_version
    from app.train.fit import DEFAULT_EVENTS_PER_TYPE, FitSettings
    from app.train.pipeline import train as train_pipeline
    from app.train.split import TooLittleData

    settings = get_settings()
    if if_missing:
        try:
            existing = latest_version(settings.models_dir / "two_tower")
        except BundleError:
            existing = None
        if existing is not None:
            console.print(f"model {existing} exists; skipping")
            return
    fit_settings = FitSettings(
        seed=seed, max_epochs=max_epochs,
        events_per_type=DEFAULT_EVENTS_PER_TYPE if events_per_type is None else events_per_type,
        visit_gap_min=settings.session_gap_min,
    )  # fmt: skip
    given = None if cutoff is None else cutoff.replace(tzinfo=UTC)
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        try:
            report = train_pipeline(
                conn, settings.models_dir, given, fit_settings, evaluation_share,
                compare_inputs=events_per_type is None,
            )  # fmt: skip
        except TooLittleData as exc:
            console.print(f"[red]error:[/] too little data: {exc}")
            raise typer.Exit(1) from None
    console.print(f"cutoff {report.cutoff:%Y-%m-%d %H:%M} UTC ({report.cutoff_from})")
    console.print(
        f"inputs: {report.fit.model.config.events_per_type} other events per type"
        f" ({report.inputs_chosen})"
    )
    console.print(
        _metrics_table(f"two-tower, test (best epoch {report.fit.best_epoch})", report.test)
    )
    console.print(f"saved {report.path} in {report.seconds / 60:.1f} min")


@cli.command()
def evaluate(
    peers: Annotated[bool, typer.Option("--peers", help="Also fit and score the peers.")] = False,
    report: Annotated[Path, typer.Option(help="Markdown report to write.")] = Path(
        "bench/results/quality.md"
    ),
    shop: Annotated[
        str | None,
        typer.Option(
            help="Name of the shop: its own section of the report (the others are kept)"
            " [default: the report's first section]."
        ),
    ] = None,
) -> None:
    """Evaluate the latest two-tower bundle (and its peers) on the test split; write a report."""
    from app.machine import describe_machine
    from app.serving.bundle import latest_version, load_bundle
    from app.train.evaluate import VARIANTS, compare, write_report

    settings = get_settings()
    bundle = load_bundle(latest_version(settings.models_dir / "two_tower"))
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        comparison = compare(conn, bundle, with_peers=peers)
    command = "python -m app evaluate" + (" --peers" if peers else "")
    command += f" --shop {shlex.quote(shop)}" if shop else ""
    write_report(comparison, report, describe_machine(), command, shop)
    for variant, _ in VARIANTS:
        rows = {r.name: r.metrics[("all shoppers", variant)].as_dict() for r in comparison.results}
        console.print(_metrics_table(f"test, {variant} (95% bootstrap intervals)", rows))
        if peers:
            best = comparison.best_peer(variant)
            console.print(
                f"{variant}: two-tower NDCG@10 / {best.name} = {comparison.ratio(variant):.3f}"
            )
    console.print(f"wrote {report}")


def _metrics_table(title: str, rows: dict[str, dict[str, float]]) -> Table:
    """Each metric with its bootstrap interval, where one was computed."""
    table = Table(title=title)
    table.add_column("")
    columns = ("recall@10", "recall@20", "ndcg@10", "hit@10", "coverage@10")
    for column in (*columns, "users"):
        table.add_column(column, justify="right")
    for name, metrics in rows.items():
        cells = [f"{metrics[c]:.4f}" for c in columns]
        for n, column in enumerate(columns):
            if f"{column} low" in metrics:  # none when nobody was evaluated
                cells[n] += f" [{metrics[f'{column} low']:.3f}, {metrics[f'{column} high']:.3f}]"
        table.add_row(name, *cells, f"{metrics['users']:.0f}")
    return table


# Progress of a counted job: what, bar, done/total, elapsed, left.
_BAR = (
    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
    TimeElapsedColumn(), TimeRemainingColumn(),
)  # fmt: skip


@cli.command("train-reasons")
def train_reasons(
    shoppers: Annotated[int, typer.Option(min=1, help="Training shoppers (not held out).")] = 800,
    per_shopper: Annotated[int, typer.Option(min=1, help="Top items per shopper.")] = 3,
    epochs: Annotated[int, typer.Option(min=1)] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Only prepare the base model if an adapter exists.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option(help="Write the corpus here as JSON instead of training (train it"
                     " elsewhere: python -m app.reasons.lora FILE --base ...)."),
    ] = None,
    start_from: Annotated[
        str | None,
        typer.Option(help="Go on training this adapter (a directory, or `latest`) instead of"
                     " starting from the base model."),
    ] = None,
) -> None:  # fmt: skip
    """Fine-tune the reason LM with LoRA on evidence -> reason pairs from real shoppers."""
    import asyncio

    from app.reasons import finetune
    from app.reasons.finetune import build_pairs, corpus_facts, examples_of
    from app.reasons.local_lm import resolve_adapter, resolve_model
    from app.reasons.lora import LoraSettings, fine_tune

    settings = get_settings()
    base = resolve_model(settings.reason_model, settings.models_dir)  # converts the base once
    existing = resolve_adapter("latest", settings.models_dir)
    if if_missing and existing is not None:
        console.print(f"reason adapter {existing} exists; skipping")
        return
    with Progress(*_BAR, console=console) as bar:
        task = bar.add_task("evidence for shoppers", total=shoppers)
        pairs = asyncio.run(
            build_pairs(
                settings, shoppers, per_shopper, held_out=False, seed=seed,
                progress=lambda n: bar.advance(task, n),
            )
        )  # fmt: skip
    console.print(f"{len(pairs)} pairs, e.g.\n{pairs[0].prompt}\n-> {pairs[0].target}")
    if export is not None:
        finetune.export(pairs, export)
        console.print(f"wrote {export}")
        return
    lora = LoraSettings(epochs=epochs, seed=seed)
    start = resolve_adapter(start_from, settings.models_dir) if start_from else None
    if start_from and (start is None or not start.is_dir()):
        raise typer.BadParameter(f"no adapter {start_from!r} under {settings.models_dir}")
    with Progress(*_BAR, console=console) as bar:
        task = bar.add_task("LoRA steps", total=None)

        def on_step(step: int, steps: int, loss: float) -> None:
            bar.update(task, completed=step, total=steps, description=f"LoRA loss {loss:.3f}")
            if step % 25 == 0 or step == steps:  # a line in logs too, where no bar is drawn
                bar.console.log(f"step {step}/{steps}: loss {loss:.3f}")

        path = fine_tune(
            base, examples_of(pairs), lora, settings.models_dir, corpus_facts(pairs), on_step,
            start_from=start,
        )  # fmt: skip
    manifest = json.loads((path / "manifest.json").read_text())
    console.print(
        f"saved {path} after {manifest['steps']} steps in {manifest['train_seconds'] / 60:.1f} min"
        f" (loss {manifest['loss']['first_10_mean']} -> {manifest['loss']['last_10_mean']})"
    )


@cli.command()
def warm(
    shoppers: Annotated[
        int, typer.Option(min=1, help="How many of the most active shoppers.")
    ] = 300,
    k: Annotated[int, typer.Option(min=1, max=100, help="Items (and reasons) per shopper.")] = 10,
) -> None:
    """Pre-generate the most active shoppers' top-k lists and reasons into Redis."""
    import asyncio
    import time

    from app.lifespan import offline_service
    from app.schemas import RecommendRequest

    # No shopper is waiting: give generation time rather than fall back to templates.
    settings = get_settings().model_copy(update={"reason_timeout_s": 60.0})
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        users = [
            row[0]
            for row in conn.execute(
                "SELECT u.external_id FROM user_feature f JOIN app_user u ON u.id = f.user_id"
                " ORDER BY f.baskets DESC, u.external_id LIMIT %s",
                (shoppers,),
            )
        ]

    async def run() -> Counter[str]:
        writers: Counter[str] = Counter()
        async with offline_service(settings) as service:
            with Progress(*_BAR, console=console) as bar:
                task = bar.add_task("warming reasons", total=len(users))
                for user in users:
                    request = RecommendRequest(user_id=user, k=k, with_reasons=True)
                    response = await service.recommend("warm", request)
                    if not isinstance(response, bytes):  # bytes: this list was cached already
                        writers.update(item.reason_writer or "" for item in response.items)
                    bar.advance(task)
        return writers

    started = time.perf_counter()
    writers = asyncio.run(run())
    written = ", ".join(f"{n} by {name}" for name, n in writers.most_common()) or "none new"
    console.print(
        f"warmed {len(users)} shoppers x {k} in {time.perf_counter() - started:.0f} s;"
        f" reasons written: {written}"
    )


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default RECS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RECS_PORT).")] = None,
) -> None:
    """Serve the API with uvicorn (JSON logs on stderr)."""
    from app.observability import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    from app.workers import WorkerConfig, serve_workers, uvicorn_config

    config = WorkerConfig(host or settings.host, port or settings.port, settings.log_level)
    if settings.workers == 1:
        uvicorn.Server(uvicorn_config(config)).run()
        return
    with tempfile.TemporaryDirectory(prefix="reasonrec-metrics-") as metrics_dir:
        # Each worker counts in its own files here; /metrics adds them all up.
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
        serve_workers(settings.workers, config)


keys = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)
cli.add_typer(keys, name="keys")


@keys.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who will hold it, e.g. storefront.")],
    scope: Annotated[
        list[str], typer.Option(help="events:write, read or admin; repeat for several.")
    ],
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from app.auth import SCOPES, hash_key, new_key

    unknown = set(scope) - set(SCOPES)
    if unknown:
        raise typer.BadParameter(f"unknown scope {sorted(unknown)}; choose from {SCOPES}")
    key = new_key()
    with psycopg.connect(libpq_url(get_settings().database_url), autocommit=True) as conn:
        try:
            conn.execute(
                "INSERT INTO api_key (name, key_hash, scopes, created_at)"
                " VALUES (%s, %s, %s, now())",
                (name, hash_key(key), sorted(set(scope))),
            )
        except psycopg.errors.UniqueViolation:
            console.print(f"[red]error:[/] a key named {name!r} exists; revoke it or pick a name")
            raise SystemExit(1) from None
    console.print(f"API key for {name} ({', '.join(sorted(set(scope)))}); it is not shown again:")
    print(key)


@keys.command("list")
def keys_list() -> None:
    """Every key's name, scopes and state (never the key)."""
    with psycopg.connect(libpq_url(get_settings().database_url)) as conn:
        rows = conn.execute(
            "SELECT name, scopes, created_at, revoked_at FROM api_key ORDER BY name"
        ).fetchall()
    table = Table("name", "scopes", "created", "state")
    for name, scopes, created, revoked in rows:
        state = f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active"
        table.add_row(name, ", ".join(scopes), f"{created:%Y-%m-%d %H:%M}", state)
    console.print(table)


@keys.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument()]) -> None:
    """Revoke a key: refused by every process within 30 s."""
    with psycopg.connect(libpq_url(get_settings().database_url), autocommit=True) as conn:
        done = conn.execute(
            "UPDATE api_key SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
            (name,),
        ).rowcount
    if not done:
        console.print(f"[red]error:[/] no active key named {name!r}")
        raise SystemExit(1)
    console.print(f"revoked {name}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cli()
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as exc:
        # The usual cause is configuration, not a bug: say so without a traceback.
        console.print(
            f"[red]error:[/] cannot use the database ({get_settings().database_url}): {exc}"
        )
        raise SystemExit(1) from None
