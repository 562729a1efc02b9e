"""Both real UCI files, end to end: the figures the README states."""

from pathlib import Path

import psycopg

from tests.conftest import UCI_2010_2011, UCI_II_2009_2010, counts
from tests.integration.test_ingest import run_ingest

# Keep in sync with the README's "Data" section.
EXPECTED = {"items": 4_618, "users": 5_852, "events": 788_096}


def test_both_files_load_to_the_documented_figures(
    conn: psycopg.Connection, database_url: str, data_dir: Path
) -> None:
    result = run_ingest(database_url, UCI_II_2009_2010, UCI_2010_2011)
    assert result.returncode == 0, result.stderr
    assert counts(conn) == EXPECTED
    summary = " ".join(result.stderr.split())
    assert "525,461 │ 406,297 │ 406,297 │ 0" in summary
    assert "541,909 │ 396,244 │ 381,799 │ 14,445" in summary  # the overlap, loaded once

    only_purchases = conn.execute(
        "SELECT count(*) FROM interaction WHERE event_type <> 'purchase'"
    ).fetchone()
    assert only_purchases == (0,)

    again = run_ingest(database_url, UCI_2010_2011)
    assert again.returncode == 0, again.stderr
    assert counts(conn) == EXPECTED
