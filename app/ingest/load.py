"""Load one file into Postgres: clean rows stream into a temporary table with COPY, then three
set-based statements merge them into item, app_user and interaction, and the purchases without
an order id are put into sessions (app/ingest/sessions.py). One transaction per file.

New items and shoppers are inserted in a fixed order (first seen, then the shop's id), and
events in the file's order, so the same files give the same database ids in any database,
whatever order the rows of one file come in."""

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import psycopg

from app.ingest.cleaning import (
    DEFAULT_SHOP,
    Event,
    RowError,
    ShopLocale,
    detect_format,
    display_title,
)
from app.ingest.reading import IngestError, Progress, read_records
from app.ingest.sessions import derive_sessions

# Serialises concurrent ingests, so two runs can't race on the same new items and users.
INGEST_LOCK_KEY = 0x7265_6373  # "recs"

T = TypeVar("T")

STAGING_DDL = """
CREATE TEMPORARY TABLE staging_event (
    line bigint, event_id text, user_ext text, sku text, event_type text, quantity integer,
    unit_price numeric(12, 2), order_id text, occurred_at timestamptz
) ON COMMIT DROP;
CREATE TEMPORARY TABLE staging_item (
    sku text, title text, display_title text, price numeric(12, 2), category text,
    first_seen_at timestamptz
) ON COMMIT DROP;
CREATE TEMPORARY TABLE staging_user (
    external_id text, country text, first_seen_at timestamptz
) ON COMMIT DROP;
"""

# The first file to mention an item or shopper sets its title, price and country; later
# files only fill in what is missing and move first_seen_at earlier.
MERGE_ITEMS = """
INSERT INTO item (sku, title, display_title, price, category, first_seen_at)
SELECT sku, title, display_title, price, category, first_seen_at FROM staging_item
ORDER BY first_seen_at, sku
ON CONFLICT (sku) DO UPDATE SET
    price = COALESCE(item.price, EXCLUDED.price),
    category = COALESCE(item.category, EXCLUDED.category),
    first_seen_at = LEAST(item.first_seen_at, EXCLUDED.first_seen_at)
RETURNING (xmax = 0)
"""
MERGE_USERS = """
INSERT INTO app_user (external_id, country, first_seen_at)
SELECT external_id, country, first_seen_at FROM staging_user
ORDER BY first_seen_at, external_id
ON CONFLICT (external_id) DO UPDATE SET
    country = COALESCE(app_user.country, EXCLUDED.country),
    first_seen_at = LEAST(app_user.first_seen_at, EXCLUDED.first_seen_at)
RETURNING (xmax = 0)
"""
# The file's shoppers with purchases without an order id: their sessions are recomputed, so a
# re-ingest with another RECS_SESSION_GAP_MIN relabels them.
SESSION_SHOPPERS = """
SELECT DISTINCT u.id FROM staging_event s JOIN app_user u ON u.external_id = s.user_ext
WHERE s.event_type = 'purchase' AND s.order_id IS NULL
"""
MERGE_EVENTS = """
INSERT INTO interaction
    (event_id, user_id, item_id, event_type, quantity, unit_price, order_id, occurred_at)
SELECT s.event_id, u.id, i.id, s.event_type, s.quantity, s.unit_price, s.order_id, s.occurred_at
FROM staging_event s
JOIN app_user u ON u.external_id = s.user_ext
JOIN item i ON i.sku = s.sku
ORDER BY s.line
ON CONFLICT (event_id) DO NOTHING
"""


@dataclass
class FileReport:
    path: Path
    source_format: str = ""
    rows_read: int = 0
    kept: int = 0
    new_events: int = 0
    new_items: int = 0
    new_users: int = 0
    sessioned: int = 0  # purchases without an order id whose session was set or changed
    dropped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def already_loaded(self) -> int:
        return self.kept - self.new_events


@dataclass
class _ItemSeen:
    titles: Counter[str] = field(default_factory=Counter)
    prices: Counter[Decimal] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    first_seen_at: datetime | None = None


@dataclass
class _UserSeen:
    countries: Counter[str] = field(default_factory=Counter)
    first_seen_at: datetime | None = None


def _most_common(counts: Counter[T]) -> T | None:
    return counts.most_common(1)[0][0] if counts else None


def ingest_file(
    conn: psycopg.Connection,
    path: Path,
    encoding: str = "utf-8",
    progress: Progress | None = None,
    shop: ShopLocale = DEFAULT_SHOP,
    session_gap_min: int = 60,
) -> FileReport:
    """Load one file, all or nothing. Raises IngestError naming the row at fault. `shop` says
    how its prices and times are written; purchases without an order id are one basket while
    less than `session_gap_min` minutes apart."""
    started = time.perf_counter()
    report = FileReport(path)
    items: dict[str, _ItemSeen] = {}
    users: dict[str, _UserSeen] = {}
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK_KEY,))
        cur.execute(STAGING_DDL)
        records = read_records(path, encoding, progress)
        try:
            where, header = next(records)
        except StopIteration:
            raise IngestError(path, "line 1", "the file is empty") from None
        try:
            source_format, parse = detect_format(header, shop)
        except RowError as exc:
            raise IngestError(path, where, str(exc)) from None
        report.source_format = source_format.name

        copy_events = (
            "COPY staging_event (line, event_id, user_ext, sku, event_type, quantity, unit_price,"
            " order_id, occurred_at) FROM STDIN"
        )
        with cur.copy(copy_events) as copy:
            for where, row in records:
                report.rows_read += 1
                try:
                    event = parse(row)
                except RowError as exc:
                    raise IngestError(path, where, str(exc)) from None
                if isinstance(event, str):
                    report.dropped[event] += 1
                    continue
                report.kept += 1
                _remember(event, items, users)
                copy.write_row(
                    (report.kept, event.event_id, event.user, event.sku, event.event_type,
                     event.quantity, event.unit_price, event.order_id, event.occurred_at)
                )  # fmt: skip
        if report.rows_read == 0:
            raise IngestError(path, where, "no data rows after the header")

        with cur.copy("COPY staging_item FROM STDIN") as copy:
            for sku, seen in items.items():
                title = _most_common(seen.titles) or sku
                copy.write_row(
                    (sku, title, display_title(title), _most_common(seen.prices),
                     _most_common(seen.categories), seen.first_seen_at)
                )  # fmt: skip
        with cur.copy("COPY staging_user FROM STDIN") as copy:
            for external_id, user in users.items():
                copy.write_row((external_id, _most_common(user.countries), user.first_seen_at))

        report.new_items = sum(inserted for (inserted,) in cur.execute(MERGE_ITEMS))
        report.new_users = sum(inserted for (inserted,) in cur.execute(MERGE_USERS))
        cur.execute(MERGE_EVENTS)
        report.new_events = cur.rowcount
        shoppers = [user_id for (user_id,) in cur.execute(SESSION_SHOPPERS)]
        report.sessioned = derive_sessions(cur, session_gap_min, shoppers)
    report.seconds = time.perf_counter() - started
    return report


def _remember(event: Event, items: dict[str, _ItemSeen], users: dict[str, _UserSeen]) -> None:
    item = items.get(event.sku)
    if item is None:
        item = items[event.sku] = _ItemSeen(first_seen_at=event.occurred_at)
    elif item.first_seen_at is None or event.occurred_at < item.first_seen_at:
        item.first_seen_at = event.occurred_at
    if event.title:
        item.titles[event.title] += 1
    if event.unit_price is not None:
        item.prices[event.unit_price] += 1
    if event.category:
        item.categories[event.category] += 1

    user = users.get(event.user)
    if user is None:
        user = users[event.user] = _UserSeen(first_seen_at=event.occurred_at)
    elif user.first_seen_at is None or event.occurred_at < user.first_seen_at:
        user.first_seen_at = event.occurred_at
    if event.country:
        user.countries[event.country] += 1


def database_has_events(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM interaction)").fetchone()
    return bool(row and row[0])


def analyze(conn: psycopg.Connection) -> None:
    """Fresh planner statistics after a bulk load, and the visibility map that lets a shopper's
    history be read from its index alone. VACUUM runs outside a transaction: `conn` must be in
    autocommit mode."""
    conn.execute("VACUUM (ANALYZE) item, app_user, interaction")
