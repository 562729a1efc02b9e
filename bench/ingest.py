"""Time `python -m app ingest` on both UCI files into a fresh database.

Reference, measured in the same run: Postgres's own COPY of the same decompressed CSV bytes into a
plain table, i.e. moving the data in with no cleaning at all. Writes bench/results/ingest.md.

    .venv/bin/python -m bench.ingest
"""

import gzip
import os
import subprocess
import sys
import time

import psycopg

from app.config import PROJECT_ROOT
from app.db.engine import drop_database, ensure_database, libpq_url
from app.db.migrate import upgrade
from app.machine import describe_machine, now

DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
FILES = [
    DATA_DIR / "online_retail_II_2009_2010.csv.gz",
    DATA_DIR / "online_retail_2010_2011.csv.gz",
]
TARGET_S = 60.0
SERVER = os.environ.get("RECS_BENCH_SERVER_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
RESULT = PROJECT_ROOT / "bench" / "results" / "ingest.md"


def raw_copy_seconds(url: str) -> tuple[float, int]:
    """COPY the decompressed files, untouched, into an unindexed table."""
    rows = 0
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute(
            "CREATE TABLE raw_line (invoice text, code text, description text, quantity text,"
            " invoice_date text, price text, customer text, country text)"
        )
        started = time.perf_counter()
        for path in FILES:
            with gzip.open(path, "rb") as src, conn.cursor() as cur:
                with cur.copy("COPY raw_line FROM STDIN (FORMAT csv, HEADER true)") as copy:
                    while chunk := src.read(1 << 20):
                        copy.write(chunk)
                rows += cur.rowcount
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE raw_line")
        conn.commit()
    return seconds, rows


def ingest_seconds(url: str) -> float:
    command = [sys.executable, "-m", "app", "ingest", *map(str, FILES)]
    env = {**os.environ, "RECS_DATABASE_URL": url}
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, cwd=PROJECT_ROOT)
    return time.perf_counter() - started


def main() -> None:
    url = f"{SERVER}/reasonrec_bench_ingest"
    drop_database(url)
    ensure_database(url)
    try:
        upgrade(url)
        reference_s, raw_rows = raw_copy_seconds(url)
        ours_s = ingest_seconds(url)
        with psycopg.connect(libpq_url(url)) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM interaction), (SELECT count(*) FROM app_user),"
                " (SELECT count(*) FROM item)"
            ).fetchone()
            assert row is not None
            events, users, items = row
    finally:
        drop_database(url)

    verdict = "met" if ours_s <= TARGET_S else "NOT met"
    report = f"""# Ingest benchmark

- Machine: {describe_machine()}
- Date: {now()}
- Command: `.venv/bin/python -m bench.ingest` (runs `python -m app ingest {" ".join(p.name for p in FILES)}`
  as a subprocess into a fresh, migrated database)

| what | rows | seconds | rows/s |
| --- | ---: | ---: | ---: |
| `python -m app ingest` (read gzip, validate, clean, COPY, merge, index) | {raw_rows:,} | {ours_s:.1f} | {raw_rows / ours_s:,.0f} |
| reference: raw `COPY` of the same decompressed CSV, no cleaning, no indexes | {raw_rows:,} | {reference_s:.1f} | {raw_rows / reference_s:,.0f} |

- Ratio ingest / raw COPY: **{ours_s / reference_s:.2f}x** the time of the reference.
- Target: both files in {TARGET_S:.0f} s or less: **{verdict}** ({ours_s:.1f} s, including interpreter start).
- Loaded: {events:,} purchase interactions, {users:,} shoppers, {items:,} items.
"""
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
