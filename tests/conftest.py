"""Shared fixtures: a throwaway Postgres database per test session, migrated to head."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.config import PROJECT_ROOT, Settings
from app.db.engine import drop_database, ensure_database, libpq_url
from app.db.migrate import upgrade

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
    return Settings(env="test", database_url=database_url, redis_url=REDIS_URL)


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
