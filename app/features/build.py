"""Recompute every feature table from the purchases in Postgres, in one transaction.

Only `purchase` events count. A basket is one order of one shopper (the purchases sharing
`order_id`; without one, the shopper's purchases of one UTC day), timed at its first line.
Set-based SQL computes the per-item, per-shopper and popularity features; the co-purchase pairs
come from sparse matrices (app/features/pairs.py); themes from the shop's categories, learned from
titles, or a preset, as RECS_THEMES says (app/features/themes.py).

The features (medians are over purchase lines, not weighted by quantity):

- item_feature: purchases (baskets holding the item), buyers, units sold, repeat_buyer_share
  (share of its buyers who bought it in two or more baskets), typical_price (median unit price
  paid, else item.price, in cents) and price_band: with n items priced and c of them priced at or
  below this one, band = floor((5c - 1) / n), so each band holds about a fifth of the catalogue
  and equal prices share a band; PRICE_BANDS names them.
- item_popularity: per shopper country (app_user.country; shoppers without one are in no
  country's rows) and over all shoppers (country "*"), calendar month (UTC) and item: baskets,
  distinct buyers, units, and rank (1 = most buyers, then most baskets; ties share a rank).
- user_feature: baskets, usual_unit_price (median unit price paid), mean_basket_value (mean over
  baskets of the sum of quantity x unit price), first and last purchase, and
  mean_days_between_baskets = (last basket - first basket) / (baskets - 1).
- user_item_feature: per shopper and item, baskets, units, first and last basket, and
  median_repurchase_gap_days, the median gap between consecutive baskets holding the item.
- item_pair: see app/features/pairs.py. item_embedding: app/features/embeddings.py.
  item.theme and item_feature.theme_source: app/features/themes.py (NULL theme: none).

Readers keep seeing the previous features until the transaction commits (rows are deleted and
inserted, not truncated). The ingest lock is held throughout, so an ingest and a features run
never interleave.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import psycopg

from app.config import ThemeChoice, get_settings
from app.db.tables import ALL_SHOPPERS
from app.features import pairs
from app.features.embeddings import item_title_vectors
from app.features.themes import assign_themes
from app.ingest.load import INGEST_LOCK_KEY

Progress = Callable[[str], None]

# Readable labels of item_feature.price_band 0..4: the quintile of the item's typical price
# among all items with a price (each band holds about a fifth of the catalogue).
PRICE_BANDS = ("budget", "low-priced", "mid-priced", "higher-priced", "premium")

FEATURE_TABLES = (
    "item_feature",
    "item_embedding",
    "item_pair",
    "item_popularity",
    "user_feature",
    "user_item_feature",
)

# Postgres' binary COPY format: signature, flags, header extension length; end-of-data marker.
PGCOPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
PGCOPY_TRAILER = b"\xff\xff"

# A basket is one order_id of one shopper: purchases that came without one carry the session
# the ingest or the events API derived (app/ingest/sessions.py).
BASKETS = """
CREATE TEMPORARY TABLE feature_line ON COMMIT DROP AS
SELECT user_id, item_id, quantity, unit_price, occurred_at, order_id AS basket_key
FROM interaction
WHERE event_type = 'purchase';

CREATE TEMPORARY TABLE feature_basket ON COMMIT DROP AS
SELECT (row_number() OVER (ORDER BY user_id, min(occurred_at), basket_key) - 1)::integer
           AS basket,
       user_id, basket_key, min(occurred_at) AS at, sum(quantity * unit_price) AS value
FROM feature_line
GROUP BY user_id, basket_key;

-- One row per item in a basket (a basket may list an item on several lines).
CREATE TEMPORARY TABLE feature_basket_item ON COMMIT DROP AS
SELECT b.basket, b.user_id, l.item_id, b.at, sum(l.quantity) AS quantity
FROM feature_line l
JOIN feature_basket b USING (user_id, basket_key)
GROUP BY b.basket, b.user_id, l.item_id, b.at;
"""

THEMES = """
CREATE TEMPORARY TABLE feature_theme (
    item_id bigint PRIMARY KEY, theme text, source text NOT NULL
) ON COMMIT DROP
"""
UPDATE_THEMES = """
UPDATE item SET theme = t.theme
FROM feature_theme t
WHERE item.id = t.item_id AND item.theme IS DISTINCT FROM t.theme
"""

ITEM_FEATURES = """
WITH sold AS (
    SELECT item_id, count(*) AS purchases, count(DISTINCT user_id) AS buyers,
           sum(quantity) AS quantity
    FROM feature_basket_item
    GROUP BY item_id
), repeat AS (
    SELECT item_id, count(*) AS repeat_buyers
    FROM (SELECT item_id FROM feature_basket_item GROUP BY item_id, user_id
          HAVING count(*) >= 2) AS again
    GROUP BY item_id
), paid AS (
    SELECT item_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price) AS median_price
    FROM feature_line
    WHERE unit_price IS NOT NULL
    GROUP BY item_id
), typical AS (
    SELECT i.id AS item_id, round(COALESCE(p.median_price::numeric, i.price), 2) AS price
    FROM item i
    LEFT JOIN paid p ON p.item_id = i.id
), banded AS (
    -- c = items priced at or below this one (equal prices count alike), n = items priced.
    SELECT item_id, (5 * count(*) OVER (ORDER BY price) - 1) / count(*) OVER () AS band
    FROM typical
    WHERE price IS NOT NULL
)
INSERT INTO item_feature (item_id, price_band, typical_price, purchases, buyers, quantity,
                          repeat_buyer_share, theme_source)
SELECT i.id, b.band, t.price, COALESCE(s.purchases, 0), COALESCE(s.buyers, 0),
       COALESCE(s.quantity, 0), COALESCE(r.repeat_buyers, 0)::double precision / s.buyers,
       th.source
FROM item i
JOIN feature_theme th ON th.item_id = i.id
JOIN typical t ON t.item_id = i.id
LEFT JOIN banded b ON b.item_id = i.id
LEFT JOIN sold s ON s.item_id = i.id
LEFT JOIN repeat r ON r.item_id = i.id
"""

# Per country and month, and over every shopper (country ALL_SHOPPERS): shoppers without a
# country count only there, never as a country of their own.
ITEM_POPULARITY = """
INSERT INTO item_popularity (country, month, item_id, purchases, buyers, quantity, rank)
SELECT country, month, item_id, purchases, buyers, quantity,
       rank() OVER (PARTITION BY country, month ORDER BY buyers DESC, purchases DESC)
FROM (
    SELECT CASE WHEN GROUPING(country) = 1 THEN %s ELSE country END AS country, month, item_id,
           count(*) AS purchases, count(DISTINCT user_id) AS buyers, sum(quantity) AS quantity
    FROM (
        SELECT u.country, date_trunc('month', bi.at AT TIME ZONE 'UTC')::date AS month,
               bi.item_id, bi.user_id, bi.quantity
        FROM feature_basket_item bi
        JOIN app_user u ON u.id = bi.user_id
    ) AS line
    GROUP BY GROUPING SETS ((country, month, item_id), (month, item_id))
    HAVING GROUPING(country) = 1 OR country IS NOT NULL
) AS monthly
"""

USER_FEATURES = """
WITH per_basket AS (
    SELECT user_id, count(*) AS baskets, avg(value) AS mean_value,
           extract(epoch FROM max(at) - min(at)) / 86400 / NULLIF(count(*) - 1, 0) AS mean_gap
    FROM feature_basket
    GROUP BY user_id
), per_line AS (
    SELECT user_id, min(occurred_at) AS first_at, max(occurred_at) AS last_at,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price) AS usual_price
    FROM feature_line
    GROUP BY user_id
)
INSERT INTO user_feature (user_id, baskets, usual_unit_price, mean_basket_value,
                          first_purchase_at, last_purchase_at, mean_days_between_baskets)
SELECT b.user_id, b.baskets, round(l.usual_price::numeric, 2), round(b.mean_value, 2),
       l.first_at, l.last_at, b.mean_gap
FROM per_basket b
JOIN per_line l USING (user_id)
"""

USER_ITEM_FEATURES = """
INSERT INTO user_item_feature (user_id, item_id, baskets, quantity, first_at, last_at,
                               median_repurchase_gap_days)
SELECT user_id, item_id, count(*), sum(quantity), min(at), max(at),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY gap_days)
FROM (
    SELECT user_id, item_id, quantity, at,
           extract(epoch FROM at - lag(at) OVER (PARTITION BY user_id, item_id ORDER BY at))
               / 86400 AS gap_days
    FROM feature_basket_item
) AS bought
GROUP BY user_id, item_id
"""


@dataclass
class FeatureReport:
    """What a run produced: row counts per table, theme coverage, and where the time went."""

    rows: dict[str, int] = field(default_factory=dict)
    # The theme source used (RECS_THEMES, with auto resolved), items per theme and per source.
    theme_choice: ThemeChoice = "none"
    themes: Counter[str] = field(default_factory=Counter)
    theme_sources: Counter[str] = field(default_factory=Counter)
    titles_embedded: int = 0
    # Highest typical price in each price band, band 0 first.
    price_band_tops: list[float] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def build_features(
    conn: psycopg.Connection, progress: Progress | None = None, themes: ThemeChoice | None = None
) -> FeatureReport:
    """Replace the contents of every feature table and item.theme, all or nothing. Themes come
    from `themes`, or when None from the configured RECS_THEMES."""
    started = time.perf_counter()
    theme_choice = get_settings().themes if themes is None else themes
    report = FeatureReport()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK_KEY,))
        # The big sorts (a line per purchase, ~100 MB on the UCI data) then stay in memory.
        cur.execute("SET LOCAL work_mem = '256MB'")
        with _timed(report, "clearing the previous features", progress):
            for table in FEATURE_TABLES:
                if table != "item_embedding":  # vectors are reused while titles are unchanged
                    cur.execute(f"DELETE FROM {table}")
        with _timed(report, "baskets", progress):
            cur.execute(BASKETS)
        with _timed(report, "themes", progress):
            _themes(conn, theme_choice, report, progress)
        with _timed(report, "item features", progress):
            cur.execute(ITEM_FEATURES)
            tops = cur.execute(
                "SELECT max(typical_price) FROM item_feature WHERE price_band IS NOT NULL"
                " GROUP BY price_band ORDER BY price_band"
            ).fetchall()
            report.price_band_tops = [float(top) for (top,) in tops]
        with _timed(report, "popularity per country and month", progress):
            cur.execute(ITEM_POPULARITY, (ALL_SHOPPERS,))
        with _timed(report, "shopper features", progress):
            cur.execute(USER_FEATURES)
            cur.execute(USER_ITEM_FEATURES)
        with _timed(report, "co-purchase pairs", progress):
            _pairs(conn)
        cur.execute("DROP TABLE feature_basket_item, feature_basket, feature_line, feature_theme")
        with _timed(report, "planner statistics", progress):
            for table in FEATURE_TABLES:
                cur.execute(f"ANALYZE {table}")
                row = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
                report.rows[table] = row[0] if row else 0
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _timed(report: FeatureReport, name: str, progress: Progress | None) -> Iterator[None]:
    if progress:
        progress(name)
    started = time.perf_counter()
    yield
    report.step_seconds[name] = time.perf_counter() - started


def _themes(
    conn: psycopg.Connection, choice: ThemeChoice, report: FeatureReport, progress: Progress | None
) -> None:
    items = conn.execute(
        "SELECT id, title, display_title, category FROM item ORDER BY id"
    ).fetchall()
    item_ids = [item_id for item_id, _, _, _ in items]
    display_titles = [display for _, _, display, _ in items]
    # Every choice stores the vectors: training and serving read them.
    vectors, report.titles_embedded = item_title_vectors(conn, item_ids, display_titles, progress)
    found = assign_themes(
        choice,
        titles=[title for _, title, _, _ in items],
        display_titles=display_titles,
        categories=[category for _, _, _, category in items],
        vectors=vectors,
    )
    conn.execute(THEMES)
    with conn.cursor().copy("COPY feature_theme (item_id, theme, source) FROM STDIN") as copy:
        for row in zip(item_ids, found.themes, found.sources, strict=True):
            copy.write_row(row)
    conn.execute(UPDATE_THEMES)
    report.theme_choice = found.choice
    report.themes = Counter(theme for theme in found.themes if theme is not None)
    report.theme_sources = Counter(found.sources)


def _int_columns(conn: psycopg.Connection, query: str, columns: int) -> pairs.IntArray:
    """The integer result of `query` as an array of shape (rows, columns)."""
    with conn.cursor().copy(f"COPY ({query}) TO STDOUT") as copy:
        text = b"".join(bytes(chunk) for chunk in copy)
    return np.array(text.split(), dtype=np.int64).reshape(-1, columns)


def _pairs(conn: psycopg.Connection) -> None:
    items = _int_columns(conn, "SELECT id FROM item ORDER BY id", 1)[:, 0]
    baskets = _int_columns(
        conn,
        "SELECT user_id, extract(epoch FROM at)::bigint FROM feature_basket ORDER BY basket",
        2,
    )
    bought = _int_columns(conn, "SELECT basket, item_id FROM feature_basket_item", 2)
    basket, item = bought[:, 0], np.searchsorted(items, bought[:, 1])
    minimum = pairs.MIN_PAIR_BASKETS
    found = {
        "basket": pairs.basket_pairs(basket, item, len(baskets), len(items), minimum),
        f"shopper_{pairs.WINDOW_DAYS}d": pairs.follow_up_pairs(
            basket, item, baskets[:, 0], baskets[:, 1], len(items), pairs.WINDOW_DAYS, minimum
        ),
    }
    copy_sql = (
        "COPY item_pair (kind, item_id, other_item_id, baskets, support, confidence, lift)"
        " FROM STDIN (FORMAT BINARY)"
    )
    with conn.cursor().copy(copy_sql) as copy:
        copy.write(PGCOPY_HEADER)
        for kind, stats in found.items():
            copy.write(_binary_pair_rows(kind, items, stats))
        copy.write(PGCOPY_TRAILER)


def _binary_pair_rows(kind: str, items: pairs.IntArray, stats: pairs.PairStats) -> bytes:
    """item_pair rows in Postgres' binary COPY format (big-endian; each field is preceded by
    its length in bytes), built by numpy instead of one Python call per row."""
    name = kind.encode()
    fields = [
        ("kind", f"S{len(name)}"), ("item_id", ">i8"), ("other_item_id", ">i8"), ("baskets", ">i4"),
        ("support", ">f8"), ("confidence", ">f8"), ("lift", ">f8"),
    ]  # fmt: skip
    layout = [("count", ">i2")]
    for column, dtype in fields:
        layout += [(f"{column}_size", ">i4"), (column, dtype)]
    rows = np.zeros(len(stats), dtype=np.dtype(layout))
    rows["count"] = len(fields)
    for column, dtype in fields:
        rows[f"{column}_size"] = np.dtype(dtype).itemsize
    rows["kind"] = name
    rows["item_id"] = items[stats.item]
    rows["other_item_id"] = items[stats.other]
    rows["baskets"] = stats.baskets
    rows["support"] = stats.support
    rows["confidence"] = stats.confidence
    rows["lift"] = stats.lift
    return rows.tobytes()
