"""`python -m app ingest` against the real Postgres: formats, idempotency, and bad input."""

import csv
import gzip
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from openpyxl import Workbook

from tests.conftest import UCI_2010_2011, UCI_II_2009_2010, counts

UCI_2010_HEADER = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
)
UCI_II_HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
UCI_ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom",
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17851,France",
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527,United Kingdom",
    "536380,22961,JAM MAKING SET PRINTED,24,2010-12-01 09:41:00,1.45,,United Kingdom",
    "536381,POST,POSTAGE,1,2010-12-01 09:45:00,18.00,12583,France",
]


def run_ingest(
    database_url: str, *args: str | Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECS_DATABASE_URL": database_url, "COLUMNS": "200"}
    env.update({f"RECS_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "app", "ingest", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    data = ("\n".join(lines) + "\n").encode(encoding)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_uci_csv_loads_clean_rows_and_reports_drops(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "orders.csv", [UCI_2010_HEADER, *UCI_ROWS])
    result = run_ingest(database_url, path)
    assert result.returncode == 0, result.stderr
    assert counts(conn) == {"items": 3, "users": 2, "events": 3}
    for reason in ("cancellation", "no customer", "non-product code"):
        assert reason in result.stderr
    item = conn.execute(
        "SELECT title, display_title, price::text FROM item WHERE sku = '85123A'"
    ).fetchone()
    assert item == (
        "WHITE HANGING HEART T-LIGHT HOLDER",
        "White Hanging Heart T-Light Holder",
        "2.55",
    )
    user = conn.execute("SELECT country FROM app_user WHERE external_id = '17851'").fetchone()
    assert user == ("France",)


def test_reingesting_the_same_file_adds_nothing(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "orders.csv.gz", [UCI_II_HEADER, *UCI_ROWS])
    assert run_ingest(database_url, path).returncode == 0
    before = counts(conn)
    again = run_ingest(database_url, path)
    assert again.returncode == 0, again.stderr
    assert counts(conn) == before


def test_invoices_in_both_real_files_are_loaded_once(
    conn: psycopg.Connection, database_url: str, tmp_path: Path, data_dir: Path
) -> None:
    # The two UCI files overlap on 2010-12-01..09; take the 1st of December from each.
    def first_of_december(source: Path, target: Path) -> tuple[Path, set[str]]:
        invoices: set[str] = set()
        with gzip.open(source, "rt", encoding="utf-8", newline="") as src:
            reader = csv.reader(src)
            rows = [next(reader)]
            for row in reader:
                if row[4].startswith("2010-12-01"):
                    rows.append(row)
                    invoices.add(row[0])
        with gzip.open(target, "wt", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows(rows)
        return target, invoices

    older, older_invoices = first_of_december(UCI_II_2009_2010, tmp_path / "ii.csv.gz")
    newer, newer_invoices = first_of_december(UCI_2010_2011, tmp_path / "new.csv.gz")
    assert older_invoices & newer_invoices, "the sample must hold shared invoices"

    assert run_ingest(database_url, older).returncode == 0
    alone = counts(conn)["events"]
    both = run_ingest(database_url, newer)
    assert both.returncode == 0, both.stderr
    # Only invoices unique to the newer file add events; the shared ones are stored once.
    extra = conn.execute(
        "SELECT count(*) FROM interaction WHERE order_id <> ALL(%s)", (sorted(older_invoices),)
    ).fetchone()
    assert extra is not None
    assert counts(conn)["events"] == alone + extra[0]
    rerun = run_ingest(database_url, older, newer)
    assert rerun.returncode == 0
    assert counts(conn)["events"] == alone + extra[0]


def test_if_empty_loads_each_file_in_its_own_transaction_then_skips(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    first = write(tmp_path / "a.csv", [UCI_2010_HEADER, *UCI_ROWS[:2]])
    second = write(tmp_path / "b.csv", [UCI_2010_HEADER, UCI_ROWS[2]])
    loaded = run_ingest(database_url, "--if-empty", first, second)
    assert loaded.returncode == 0, loaded.stderr
    assert counts(conn)["events"] == 3
    third = write(tmp_path / "c.csv", [UCI_2010_HEADER, UCI_ROWS[0].replace("536365", "536999")])
    skipped = run_ingest(database_url, "--if-empty", third)
    assert skipped.returncode == 0
    assert "already holds events; skipping" in skipped.stderr
    assert counts(conn)["events"] == 3


def test_generic_events_csv(conn: psycopg.Connection, database_url: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.csv",
        [
            "user_id,item_id,occurred_at,event,quantity,price,title,category",
            "u1,mug-1,2024-03-01T10:00:00Z,view,,,Red Mug,Mugs",
            "u1,mug-1,2024-03-01T10:01:00Z,add_to_cart,2,4.50,Red Mug,Mugs",
            "u1,mug-1,2024-03-01T10:02:00Z,purchase,2,4.50,Red Mug,Mugs",
            "u2,tea-7,2024-03-02T09:00:00Z,click,,,Green Tea,",
            ",tea-7,2024-03-02T09:00:00Z,click,,,Green Tea,",
        ],
    )
    result = run_ingest(database_url, path)
    assert result.returncode == 0, result.stderr
    assert counts(conn) == {"items": 2, "users": 2, "events": 4}
    types = conn.execute("SELECT event_type FROM interaction ORDER BY occurred_at").fetchall()
    assert [t for (t,) in types] == ["view", "add_to_cart", "purchase", "click"]
    assert conn.execute("SELECT category FROM item WHERE sku = 'mug-1'").fetchone() == ("Mugs",)


def test_xlsx_workbook_with_two_sheets(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "Year 2009-2010"
    second = book.create_sheet("Year 2010-2011")
    header = UCI_II_HEADER.split(",")
    for sheet, rows in ((first, UCI_ROWS[:2]), (second, UCI_ROWS[2:3])):
        sheet.append(header)
        for line in rows:
            cells: list[object] = list(line.split(","))
            cells[3] = int(str(cells[3]))
            cells[5] = float(str(cells[5]))
            cells[6] = float(str(cells[6]))  # Excel stores customer ids as floats
            sheet.append(cells)
    path = tmp_path / "online_retail_II.xlsx"
    book.save(path)
    result = run_ingest(database_url, path)
    assert result.returncode == 0, result.stderr
    assert counts(conn) == {"items": 3, "users": 2, "events": 3}
    ids = conn.execute("SELECT external_id FROM app_user ORDER BY 1").fetchall()
    assert ids == [("17850",), ("17851",)]


BAD_INPUTS = {
    "missing column": (
        "missing.csv",
        [UCI_2010_HEADER.replace(",Country", ""), UCI_ROWS[0].rsplit(",", 1)[0]],
        "line 1: missing column(s) Country",
    ),
    "unparseable date": (
        "date.csv",
        [UCI_2010_HEADER, UCI_ROWS[0], UCI_ROWS[1].replace("2010-12-01 08:26:00", "01.12.2010")],
        "line 3: date '01.12.2010' is not a date and time",
    ),
    "unparseable number": (
        "number.csv",
        [UCI_2010_HEADER, UCI_ROWS[0], UCI_ROWS[1].replace(",6,", ",six,")],
        "line 3: quantity 'six' is not a whole number",
    ),
    "empty file": ("empty.csv", [], "line 1: the file is empty"),
    "header only": ("header.csv", [UCI_2010_HEADER], "line 1: no data rows after the header"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_fails_naming_file_row_and_reason_and_loads_nothing(
    case: str, conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.csv", [UCI_2010_HEADER, UCI_ROWS[2]])
    assert run_ingest(database_url, good).returncode == 0
    before = counts(conn)

    name, lines, message = BAD_INPUTS[case]
    path = tmp_path / name
    if lines:
        write(path, lines)
    else:
        path.write_bytes(b"")
    result = run_ingest(database_url, path)
    assert result.returncode != 0
    output = " ".join(result.stderr.split())
    assert f"{path}, {message}" in output
    assert "Traceback" not in result.stderr
    assert counts(conn) == before


def test_wrong_encoding_names_the_line(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "latin1.csv",
        [UCI_2010_HEADER, UCI_ROWS[0], UCI_ROWS[1].replace("LANTERN", "LANTERN £3")],
        encoding="latin-1",
    )
    result = run_ingest(database_url, path)
    assert result.returncode != 0
    assert f"{path}, line 3: not valid utf-8 (byte 0xa3" in " ".join(result.stderr.split())
    assert counts(conn) == {"items": 0, "users": 0, "events": 0}
    # The user can say what the encoding is.
    assert run_ingest(database_url, path, "--encoding", "latin-1").returncode == 0
    assert counts(conn)["events"] == 2


def test_truncated_gzip_loads_nothing(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    rows = [UCI_2010_HEADER] + [
        UCI_ROWS[0].replace("536365", str(600000 + n)) for n in range(20_000)
    ]
    whole = write(tmp_path / "whole.csv.gz", rows).read_bytes()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    result = run_ingest(database_url, path)
    assert result.returncode != 0
    output = " ".join(result.stderr.split())
    assert f"{path}, line " in output
    assert "the compressed file ends early" in output
    assert counts(conn) == {"items": 0, "users": 0, "events": 0}


def test_a_bad_second_file_keeps_the_first(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.csv", [UCI_2010_HEADER, *UCI_ROWS[:2]])
    bad = write(tmp_path / "bad.csv", [UCI_2010_HEADER, UCI_ROWS[2].replace(",6,", ",x,")])
    result = run_ingest(database_url, good, bad)
    assert result.returncode != 0
    assert "nothing from" in result.stderr
    assert counts(conn)["events"] == 2


def test_unsupported_and_missing_files(database_url: str, tmp_path: Path) -> None:
    other = write(tmp_path / "orders.json", ["{}"])
    assert "unsupported file type" in run_ingest(database_url, other).stderr
    assert "no such file" in run_ingest(database_url, tmp_path / "absent.csv").stderr


GENERIC_HEADER = "user_id,item_id,occurred_at,event,quantity,price,title,category,order_id"


def test_the_same_catalogue_gets_the_same_ids_in_any_row_order(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    rows = [
        f"u{user},sku-{item},2024-03-{1 + (user * 7 + item) % 20:02d}T10:00:00Z,purchase,1,2.50,"
        f"Item {item},,"
        for user in range(12)
        for item in range(user % 5, 30, 3)
    ]

    def ids_after_ingest(lines: list[str], name: str) -> tuple[dict[str, int], dict[str, int]]:
        conn.execute("TRUNCATE interaction, item, app_user RESTART IDENTITY CASCADE")
        result = run_ingest(database_url, write(tmp_path / name, [GENERIC_HEADER, *lines]))
        assert result.returncode == 0, result.stderr
        items: dict[str, int] = dict(conn.execute("SELECT sku, id FROM item").fetchall())
        users: dict[str, int] = dict(
            conn.execute("SELECT external_id, id FROM app_user").fetchall()
        )
        return items, users

    first = ids_after_ingest(rows, "a.csv")
    assert ids_after_ingest(rows, "b.csv") == first
    shuffled = rows[1::2] + rows[0::2][::-1]
    assert sorted(shuffled) == sorted(rows) != shuffled
    assert ids_after_ingest(shuffled, "c.csv") == first
    # Ids follow first appearance in time, then the shop's id.
    order = conn.execute("SELECT sku FROM item ORDER BY id").fetchall()
    assert [sku for (sku,) in order] == [
        sku for (sku,) in conn.execute("SELECT sku FROM item ORDER BY first_seen_at, sku")
    ]


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def test_purchases_without_an_order_are_baskets_split_by_the_session_gap(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    first = write(
        tmp_path / "first.csv",
        [
            GENERIC_HEADER,
            "u1,a,2024-03-01T10:00:00Z,purchase,1,2,A,,",
            "u1,b,2024-03-01T10:30:00Z,purchase,1,2,B,,",
            "u1,c,2024-03-01T10:45:00Z,purchase,1,2,C,,o-1",  # a real order: kept, not a session
            "u1,c,2024-03-01T11:20:00Z,purchase,1,2,C,,",  # 50 min after 10:30: same basket
            "u1,a,2024-03-01T12:30:00Z,purchase,1,2,A,,",  # 70 min: a new one
            "u1,b,2024-03-01T12:40:00Z,view,,,B,,",  # only purchases make baskets
            "u2,a,2024-03-01T10:10:00Z,purchase,1,2,A,,",
        ],
    )
    result = run_ingest(database_url, first)
    assert result.returncode == 0, result.stderr

    def baskets() -> dict[str, str | None]:
        rows = conn.execute(
            "SELECT u.external_id || ' ' || i.sku || ' ' || to_char(e.occurred_at AT TIME ZONE"
            " 'UTC', 'HH24:MI'), e.order_id FROM interaction e JOIN app_user u ON u.id = e.user_id"
            " JOIN item i ON i.id = e.item_id"
        ).fetchall()
        return dict(rows)

    morning, noon = epoch("2024-03-01T10:00:00+00:00"), epoch("2024-03-01T12:30:00+00:00")
    assert baskets() == {
        "u1 a 10:00": f"session:u1:{morning}",
        "u1 b 10:30": f"session:u1:{morning}",
        "u1 c 10:45": "o-1",
        "u1 c 11:20": f"session:u1:{morning}",
        "u1 a 12:30": f"session:u1:{noon}",
        "u1 b 12:40": None,
        "u2 a 10:10": f"session:u2:{epoch('2024-03-01T10:10:00+00:00')}",
    }
    # A later file's purchase at 12:00 bridges the gap: the two sessions become one.
    later = write(
        tmp_path / "later.csv", [GENERIC_HEADER, "u1,b,2024-03-01T12:00:00Z,purchase,1,2,B,,"]
    )
    assert run_ingest(database_url, later).returncode == 0
    merged = baskets()
    assert {merged[k] for k in merged if k.startswith("u1") and k != "u1 b 12:40"} == {
        f"session:u1:{morning}",
        "o-1",
    }
    # A shorter gap splits them again on the next ingest of the same files.
    assert run_ingest(database_url, later, session_gap_min="40").returncode == 0
    split = baskets()
    assert split["u1 a 10:00"] == split["u1 b 10:30"] != split["u1 c 11:20"]
    assert (
        split["u1 b 12:00"]
        == split["u1 a 12:30"]
        == f"session:u1:{epoch('2024-03-01T12:00:00+00:00')}"
    )


def test_prices_in_the_shops_currency_and_times_in_its_zone(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    shop = {"currency": "EUR", "locale": "de_DE", "timezone": "Europe/Berlin"}
    good = write(
        tmp_path / "shop.csv",
        [
            GENERIC_HEADER,
            'u1,a,2024-07-01 10:00:00,purchase,1,"1.234,50 €",Lamp &amp; Shade,Home &amp; Living,',
            "u1,b,2024-07-01T10:05:00+00:00,purchase,1,€3,Bulb,,",
        ],
    )
    result = run_ingest(database_url, good, **shop)
    assert result.returncode == 0, result.stderr
    items = conn.execute(
        "SELECT sku, price::text, title, display_title, category FROM item ORDER BY sku"
    )
    assert items.fetchall() == [
        ("a", "1234.50", "Lamp & Shade", "Lamp & Shade", "Home & Living"),
        ("b", "3.00", "Bulb", "Bulb", None),
    ]
    times = conn.execute("SELECT occurred_at FROM interaction ORDER BY occurred_at").fetchall()
    assert [t for (t,) in times] == [
        datetime(2024, 7, 1, 8, 0, tzinfo=UTC),  # Berlin summer time is UTC+2
        datetime(2024, 7, 1, 10, 5, tzinfo=UTC),
    ]

    bad = write(
        tmp_path / "dollars.csv", [GENERIC_HEADER, "u2,a,2024-07-02 10:00:00,purchase,1,$3,A,,"]
    )
    refused = run_ingest(database_url, bad, **shop)
    assert refused.returncode != 0
    output = " ".join(refused.stderr.split())
    assert f"{bad}, line 2: price '$3' is in USD, the shop's currency is EUR" in output
    unset = run_ingest(database_url, bad)
    assert "set RECS_CURRENCY" in " ".join(unset.stderr.split())
    assert counts(conn)["events"] == 2
