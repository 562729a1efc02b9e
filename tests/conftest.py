"""Shared fixtures: a throwaway Postgres database per test session, migrated to head."""

import csv
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

from app.config import PROJECT_ROOT, Settings
from app.db.engine import drop_database, ensure_database, libpq_url
from app.db.migrate import upgrade
from bench.faults import free_port

if TYPE_CHECKING:
    from app.train.pipeline import TrainReport

SERVER_URL = os.environ.get("RECS_TEST_SERVER_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("RECS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
UCI_2010_2011 = DATA_DIR / "online_retail_2010_2011.csv.gz"
UCI_II_2009_2010 = DATA_DIR / "online_retail_II_2009_2010.csv.gz"


def new_database_url(purpose: str) -> str:
    return f"{SERVER_URL}/reasonrec_{purpose}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = new_database_url("test")
    ensure_database(url)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        env="test", database_url=database_url, redis_url=REDIS_URL, reason_writer="template"
    )


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the session database, emptied before each test."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute("TRUNCATE interaction, item, app_user RESTART IDENTITY CASCADE")
        yield connection


def counts(conn: psycopg.Connection) -> dict[str, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM item), (SELECT count(*) FROM app_user),"
        " (SELECT count(*) FROM interaction)"
    ).fetchone()
    assert row is not None
    return dict(zip(("items", "users", "events"), row, strict=True))


@pytest.fixture
def data_dir() -> Path:
    if not UCI_2010_2011.is_file() or not UCI_II_2009_2010.is_file():
        pytest.fail(f"the shared data files are missing from {DATA_DIR}")
    return DATA_DIR


TINY_CUTOFF = datetime(2011, 1, 20, tzinfo=UTC)


@dataclass(frozen=True)
class TinyWorld:
    """Two months of real orders in their own database, with features and a trained model."""

    database_url: str
    models_dir: Path
    report: "TrainReport"


def build_tiny_world(folder: Path, purpose: str, epochs: int = 2) -> TinyWorld:
    from app.features import build_features
    from app.train.fit import FitSettings
    from app.train.pipeline import train

    sample = folder / "sample.csv.gz"
    with (
        gzip.open(UCI_2010_2011, "rt", encoding="utf-8", newline="") as src,
        gzip.open(sample, "wt", encoding="utf-8", newline="") as out,
    ):
        reader, writer = csv.reader(src), csv.writer(out)
        writer.writerow(next(reader))
        writer.writerows(row for row in reader if row[4] < "2011-02-01")
    url = new_database_url(purpose)
    ensure_database(url)
    upgrade(url)
    subprocess.run(
        [sys.executable, "-m", "app", "ingest", str(sample)],
        env={**os.environ, "RECS_DATABASE_URL": url}, capture_output=True, check=True,
    )  # fmt: skip
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        build_features(conn, themes="uk-gift")  # the demo shop's themes, as `make run` builds them
        report = train(conn, folder / "models", TINY_CUTOFF, FitSettings(seed=0, max_epochs=epochs))
    return TinyWorld(url, folder / "models", report)


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyWorld]:
    world = build_tiny_world(tmp_path_factory.mktemp("tiny"), "tiny")
    try:
        yield world
    finally:
        drop_database(world.database_url)


@contextmanager
def serving(
    world: TinyWorld, workers: int = 1, log: Path | None = None, **env: str
) -> Iterator[str]:
    """`python -m app serve` on a free port over the tiny world; yields its base URL once
    /readyz has answered 200 twenty times in a row (every worker is up). Its logs (stderr) go
    to `log` when given."""
    port = free_port()
    environment = {
        **os.environ, "RECS_DATABASE_URL": world.database_url, "RECS_REDIS_URL": REDIS_URL,
        "RECS_MODELS_DIR": str(world.models_dir), "RECS_WORKERS": str(workers),
        "RECS_LOG_LEVEL": "warning", "RECS_REASON_WRITER": "template", **env,
    }  # fmt: skip
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "app", "serve", "--port", str(port)]
    stderr = log.open("ab") if log is not None else None
    process = subprocess.Popen(command, env=environment, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        ready_in_a_row, deadline = 0, time.monotonic() + 90
        while ready_in_a_row < 20 and time.monotonic() < deadline:
            try:
                ok = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready_in_a_row = ready_in_a_row + 1 if ok else 0
            time.sleep(0 if ok else 0.5)
        assert ready_in_a_row == 20, "the server should become ready"
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        if stderr is not None:
            stderr.close()


@dataclass(frozen=True)
class Shoppers:
    users: list[str]
    items: list[str]  # the shop's ids


@pytest.fixture(scope="module")
def shoppers(tiny_world: TinyWorld) -> Shoppers:
    """A few real shoppers, and items the model knows."""
    skus = json.loads(next(tiny_world.models_dir.glob("two_tower/*/id_maps.json")).read_text())
    with psycopg.connect(libpq_url(tiny_world.database_url)) as conn:
        users = [u for (u,) in conn.execute("SELECT external_id FROM app_user ORDER BY id LIMIT 8")]
        rows = conn.execute(
            "SELECT sku FROM item WHERE sku = ANY(%s) ORDER BY id LIMIT 8", (skus["item_skus"],)
        )
        items = [i for (i,) in rows]
    return Shoppers(users, items)


def wait_for(check: Callable[[], bool], seconds: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not so within {seconds} s"
        time.sleep(0.2)
    return time.monotonic() - started
