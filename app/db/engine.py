"""Connections: the async engine the service uses, and sync helpers for CLI jobs."""

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def create_engine_for_service(database_url: str, timeout_s: int = 2) -> AsyncEngine:
    """The service's pool. When Postgres is out of reach a request must fail within about
    `timeout_s` (and be answered 503), never hang: connecting, waiting for a pooled connection
    and unacknowledged writes on a silent network are all bounded by it."""
    return create_async_engine(
        database_url, pool_size=20, max_overflow=10,
        # A restarted Postgres must not leave dead connections in the pool.
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args={
            "connect_timeout": timeout_s,
            "tcp_user_timeout": timeout_s * 1000,
            "keepalives_idle": 10, "keepalives_interval": 2, "keepalives_count": 3,
        },
    )  # fmt: skip


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL in the form psycopg.connect() takes."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL if it does not exist. True when it was created."""
    url = make_url(database_url)
    name = url.database
    if not name:
        raise ValueError(f"the database URL names no database: {url!r}")
    maintenance = libpq_url(url.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def drop_database(database_url: str) -> None:
    url = make_url(database_url)
    if not url.database:
        raise ValueError(f"the database URL names no database: {url!r}")
    maintenance = libpq_url(url.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(url.database))
        )
