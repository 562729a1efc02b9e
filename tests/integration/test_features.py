"""The features step on a small hand-made order file: every value below is computed by hand."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from app.features import PRICE_BANDS, build_features
from app.features.build import FEATURE_TABLES
from app.features.embeddings import MODEL
from app.features.pairs import MIN_PAIR_BASKETS
from tests.integration.test_ingest import UCI_2010_HEADER, run_ingest, write

START = datetime(2011, 1, 1, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ITEMS = {  # short name: (stock code, title, unit price)
    "A": ("85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "2.55"),
    "B": ("20725", "LUNCH BAG RED RETROSPOT", "1.65"),
    "C": ("22423", "REGENCY CAKESTAND 3 TIER", "12.75"),
    "D": ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS", "2.95"),
    "E": ("90001", "RED RETROSPOT SANDWICH POUCH", "0.42"),  # no keyword rule matches
}
# Shopper 1002 shops two hours after shopper 1001.
LATER = timedelta(hours=2)


def line(invoice: int, name: str, quantity: int, day: int, shopper: int, country: str) -> str:
    code, title, price = ITEMS[name]
    at = START + day * DAY + (LATER if shopper == 1002 else timedelta())
    return f"{invoice},{code},{title},{quantity},{at:%Y-%m-%d %H:%M:%S},{price},{shopper},{country}"


def orders() -> list[str]:
    """25 baskets. Shopper 1001 (UK) buys 6 A and 10 B every 10 days from day 0 to day 110.
    Shopper 1002 (France) buys 2 A and 1 B on the same days, plus one C on days 0, 10 and 40.
    Shopper 1003 (France) buys 12 D, 24 E and one C, once, on day 5."""
    lines = [UCI_2010_HEADER]
    for n, day in enumerate(range(0, 120, 10)):
        lines += [
            line(600_001 + n, "A", 6, day, 1001, "United Kingdom"),
            line(600_001 + n, "B", 10, day, 1001, "United Kingdom"),
            line(600_101 + n, "A", 2, day, 1002, "France"),
            line(600_101 + n, "B", 1, day, 1002, "France"),
        ]
        if day in (0, 10, 40):
            lines.append(line(600_101 + n, "C", 1, day, 1002, "France"))
    for name, quantity in (("D", 12), ("E", 24), ("C", 1)):
        lines.append(line(600_201, name, quantity, 5, 1003, "France"))
    return lines


@pytest.fixture
def ingested(conn: psycopg.Connection, database_url: str, tmp_path: Path) -> dict[str, int]:
    """Load the orders through the CLI; the item ids by short name."""
    result = run_ingest(database_url, write(tmp_path / "orders.csv", orders()))
    assert result.returncode == 0, result.stderr
    ids: dict[str, int] = dict(conn.execute("SELECT sku, id FROM item").fetchall())
    return {name: ids[code] for name, (code, _, _) in ITEMS.items()}


def user_id(conn: psycopg.Connection, external_id: str) -> int:
    row = conn.execute("SELECT id FROM app_user WHERE external_id = %s", (external_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_pairs_bought_together_and_within_30_days(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    report = build_features(conn)
    a, b = ingested["A"], ingested["B"]
    rows = conn.execute(
        "SELECT kind, item_id, other_item_id, baskets, support, confidence, lift"
        " FROM item_pair ORDER BY kind, item_id, other_item_id"
    ).fetchall()
    # A and C share 3 baskets, fewer than the minimum: left out, like every other pair.
    assert MIN_PAIR_BASKETS == 20
    # Same basket: A and B are in 24 of the 25 baskets, always together.
    together = (24, 24 / 25, 1.0, 25 / 24)
    # Within 30 days: the 22 baskets with A that are not a shopper's last are followed by one
    # with B, and 22 baskets have B in their window: (22/24) / (22/25).
    within = (22, 22 / 25, 22 / 24, 25 / 24)
    assert rows == [
        pytest.approx(("basket", *sorted((a, b)), *together)),
        pytest.approx(("basket", *sorted((a, b), reverse=True), *together)),
        pytest.approx(("shopper_30d", *sorted((a, b)), *within)),
        pytest.approx(("shopper_30d", *sorted((a, b), reverse=True), *within)),
    ]
    assert report.rows["item_pair"] == 4


def test_shopper_spend_and_repurchase_cadence(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    build_features(conn)
    features = conn.execute(
        "SELECT u.external_id, f.baskets, f.usual_unit_price, f.mean_basket_value,"
        " f.first_purchase_at, f.last_purchase_at, f.mean_days_between_baskets"
        " FROM user_feature f JOIN app_user u ON u.id = f.user_id ORDER BY 1"
    ).fetchall()
    assert features == [
        # Median of twelve 1.65 and twelve 2.55; every basket is 6 * 2.55 + 10 * 1.65.
        ("1001", 12, Decimal("2.10"), Decimal("31.80"), START, START + 110 * DAY, 10.0),
        # 27 prices (twelve 1.65, twelve 2.55, three 12.75); (3 * 19.50 + 9 * 6.75) / 12 = 9.9375.
        ("1002", 12, Decimal("2.55"), Decimal("9.94"), START + LATER, START + 110 * DAY + LATER,
         10.0),
        # 12 * 2.95 + 24 * 0.42 + 12.75; a single basket has no gap.
        ("1003", 1, Decimal("2.95"), Decimal("58.23"), START + 5 * DAY, START + 5 * DAY, None),
    ]  # fmt: skip

    def cadence(shopper: str, name: str) -> tuple[object, ...] | None:
        return conn.execute(
            "SELECT baskets, quantity, first_at, last_at, median_repurchase_gap_days"
            " FROM user_item_feature WHERE user_id = %s AND item_id = %s",
            (user_id(conn, shopper), ingested[name]),
        ).fetchone()

    assert cadence("1001", "A") == (12, 72, START, START + 110 * DAY, 10.0)
    # C on days 0, 10 and 40: gaps of 10 and 30 days.
    assert cadence("1002", "C") == (3, 3, START + LATER, START + 40 * DAY + LATER, 20.0)
    assert cadence("1003", "D") == (1, 12, START + 5 * DAY, START + 5 * DAY, None)
    assert cadence("1003", "A") is None
    # 1001 bought A and B; 1002 A, B and C; 1003 C, D and E.
    assert conn.execute("SELECT count(*) FROM user_item_feature").fetchone() == (8,)


def test_popularity_per_country_and_month(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    build_features(conn)
    name = {item_id: name for name, item_id in ingested.items()}
    rows = conn.execute(
        "SELECT rank, item_id, purchases, buyers, quantity FROM item_popularity"
        " WHERE country = 'France' AND month = '2011-01-01'"
    ).fetchall()
    # January (days 0..30): 1002's baskets of days 0, 10, 20, 30 (C on 0 and 10), and 1003's.
    assert sorted((rank, name[item], *rest) for rank, item, *rest in rows) == [
        (1, "C", 3, 2, 3),  # (rank, item, purchases, buyers, units): two buyers rank first
        (2, "A", 4, 1, 8),
        (2, "B", 4, 1, 4),  # ties share a rank
        (4, "D", 1, 1, 12),
        (4, "E", 1, 1, 24),
    ]
    months = conn.execute(
        "SELECT country, month, count(*) FROM item_popularity GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    firsts = [date(2011, month, 1) for month in (1, 2, 3, 4)]
    everyone = conn.execute(
        "SELECT month, count(*) FROM item_popularity WHERE country = '*' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert [month for month, _ in everyone] == firsts  # every shopper's ranking, month by month
    months = [row for row in months if row[0] != "*"]
    assert months == [
        ("France", firsts[0], 5),
        ("France", firsts[1], 3),  # A, B and C (day 40 is 10 February)
        ("France", firsts[2], 2),
        ("France", firsts[3], 2),
        *(("United Kingdom", first, 2) for first in firsts),
    ]


def test_item_features_price_bands_and_themes(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    report = build_features(conn, themes="uk-gift")
    name = {item_id: name for name, item_id in ingested.items()}
    rows = conn.execute(
        "SELECT f.item_id, f.price_band, f.typical_price, f.purchases, f.buyers, f.quantity,"
        " f.repeat_buyer_share, i.theme, f.theme_source"
        " FROM item_feature f JOIN item i ON i.id = f.item_id"
    ).fetchall()
    assert sorted((name[item], *rest) for item, *rest in rows) == [
        # Five prices, one per band: E 0.42 < B 1.65 < A 2.55 < D 2.95 < C 12.75.
        ("A", 2, Decimal("2.55"), 24, 2, 96, 1.0, "Candles and T-lights", "keyword"),
        ("B", 1, Decimal("1.65"), 24, 2, 132, 1.0, "Lunch bags and boxes", "keyword"),
        # 1002 bought C three times, 1003 once: one of two buyers came back.
        ("C", 4, Decimal("12.75"), 4, 2, 4, 0.5, "Cake and baking", "keyword"),
        ("D", 3, Decimal("2.95"), 1, 1, 12, 0.0, "Christmas decorations", "keyword"),
        # No rule matches "sandwich pouch"; its nearest title is the lunch bag's.
        ("E", 0, Decimal("0.42"), 1, 1, 24, 0.0, "Lunch bags and boxes", "neighbours"),
    ]
    assert PRICE_BANDS[0] == "budget"
    assert report.price_band_tops == [0.42, 1.65, 2.55, 2.95, 12.75]
    assert report.theme_choice == "uk-gift"
    assert report.theme_sources == {"keyword": 4, "neighbours": 1}
    assert conn.execute("SELECT count(*) FROM item WHERE theme IS NULL").fetchone() == (0,)


def test_five_uncategorised_items_are_too_few_to_learn_themes(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    build_features(conn, themes="uk-gift")
    # auto: no categories, so learned; five titles are too few, and the old themes go.
    report = build_features(conn, themes="auto")
    assert (report.theme_choice, report.theme_sources) == ("learned", {"none": 5})
    assert conn.execute("SELECT count(*) FROM item WHERE theme IS NOT NULL").fetchone() == (0,)


def test_title_vectors_are_stored_and_reused(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    assert build_features(conn).titles_embedded == 5
    stored = conn.execute(
        "SELECT model, title, cardinality(vector),"
        " sqrt((SELECT sum(x::float8 * x) FROM unnest(vector) AS x))"
        " FROM item_embedding WHERE item_id = %s",
        (ingested["A"],),
    ).fetchone()
    assert stored is not None
    assert stored[:3] == (MODEL, "White Hanging Heart T-Light Holder", 384)
    assert stored[3] == pytest.approx(1.0, abs=1e-5)
    assert build_features(conn).titles_embedded == 0
    conn.execute(
        "UPDATE item SET display_title = 'Red Retrospot Picnic Pouch' WHERE id = %s",
        (ingested["E"],),
    )
    assert build_features(conn).titles_embedded == 1


def snapshot(conn: psycopg.Connection) -> dict[str, list[tuple[object, ...]]]:
    tables = {
        table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
        for table in FEATURE_TABLES
    }
    return {**tables, "item": conn.execute("SELECT id, theme FROM item ORDER BY id").fetchall()}


def test_rerunning_gives_the_same_features(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    first = build_features(conn)
    before = snapshot(conn)
    second = build_features(conn)
    assert snapshot(conn) == before
    assert (
        second.rows
        == first.rows
        == {
            "item_feature": 5,
            "item_embedding": 5,
            "item_pair": 4,
            "item_popularity": 32,  # 20 by country and month, 12 over all shoppers
            "user_feature": 3,
            "user_item_feature": 8,
        }
    )


def test_a_failure_keeps_the_previous_features(
    conn: psycopg.Connection, ingested: dict[str, int]
) -> None:
    build_features(conn)
    before = snapshot(conn)

    def interrupt(step: str) -> None:
        if step == "co-purchase pairs":
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        build_features(conn, interrupt)
    assert snapshot(conn) == before


def test_progress_names_each_step(conn: psycopg.Connection, ingested: dict[str, int]) -> None:
    steps: list[str] = []
    report = build_features(conn, steps.append)
    assert steps[:2] == ["clearing the previous features", "baskets"]
    assert "embedding 5 titles with MiniLM" in steps
    assert set(report.step_seconds) == set(steps) - {"embedding 5 titles with MiniLM"}
    assert report.seconds >= sum(report.step_seconds.values())


def test_an_empty_database_gives_empty_features(conn: psycopg.Connection) -> None:
    report = build_features(conn)
    assert report.rows == dict.fromkeys(FEATURE_TABLES, 0)
    assert report.price_band_tops == []


def test_only_purchases_count(conn: psycopg.Connection, database_url: str, tmp_path: Path) -> None:
    events = write(
        tmp_path / "events.csv",
        [
            "user_id,item_id,occurred_at,event,quantity,price,title,category",
            "u1,mug-1,2024-03-01T10:00:00Z,purchase,2,4.50,Red Spotty Mug,",
            "u1,clock-7,2024-03-01T10:05:00Z,view,,,Blue Diner Wall Clock,",
            "u2,clock-7,2024-03-02T09:00:00Z,add_to_cart,1,,Blue Diner Wall Clock,",
        ],
    )
    assert run_ingest(database_url, events).returncode == 0
    build_features(conn, themes="uk-gift")
    rows = conn.execute(
        "SELECT i.sku, i.theme, f.purchases, f.buyers, f.price_band, f.typical_price"
        " FROM item_feature f JOIN item i ON i.id = f.item_id ORDER BY i.sku"
    ).fetchall()
    # The clock was only looked at: no purchases and no price, but a theme all the same.
    assert rows == [
        ("clock-7", "Clocks", 0, 0, None, None),
        ("mug-1", "Mugs and cups", 1, 1, 4, Decimal("4.50")),
    ]
    shoppers = conn.execute(
        "SELECT u.external_id, f.baskets FROM user_feature f JOIN app_user u ON u.id = f.user_id"
    ).fetchall()
    assert shoppers == [("u1", 1)]


EVENTS_HEADER = "user_id,item_id,occurred_at,event,quantity,price,title,category"


def shop_events(items: list[tuple[str, str, str]]) -> list[str]:
    """One purchase per item (sku, title, category) by shopper s1, a minute apart."""
    return [EVENTS_HEADER] + [
        f"s1,{sku},2024-03-01T10:{n:02d}:00Z,purchase,1,4.50,{title},{category}"
        for n, (sku, title, category) in enumerate(items)
    ]


def themes_by_sku(conn: psycopg.Connection) -> dict[str, tuple[str | None, str]]:
    rows = conn.execute(
        "SELECT i.sku, i.theme, f.theme_source FROM item i JOIN item_feature f ON f.item_id = i.id"
    ).fetchall()
    return {sku: (theme, source) for sku, theme, source in rows}


def test_themes_from_the_shops_category_paths(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    items = [
        ("m1", "Blue Mug", "Home &amp; Kitchen > Mugs"),
        ("m2", "Red Mug", "Home &amp; Kitchen > Mugs"),
        ("m3", "Tall Mug", "Home &amp; Kitchen > Mugs"),
        ("t1", "Teapot", "Home &amp; Kitchen > Teapots"),  # alone: its parent's theme
        ("g1", "Hose", "Garden"),
        ("x1", "Mystery Box", ""),  # no category: no theme
    ]
    assert (
        run_ingest(database_url, write(tmp_path / "shop.csv", shop_events(items))).returncode == 0
    )
    report = build_features(conn, themes="auto")
    assert report.theme_choice == "category"
    assert themes_by_sku(conn) == {
        "m1": ("Mugs", "category"),
        "m2": ("Mugs", "category"),
        "m3": ("Mugs", "category"),
        "t1": ("Home & Kitchen", "category"),
        "g1": ("Garden", "category"),
        "x1": (None, "none"),
    }
    build_features(conn, themes="none")
    assert set(themes_by_sku(conn).values()) == {(None, "none")}


def test_themes_learned_from_titles(
    conn: psycopg.Connection, database_url: str, tmp_path: Path
) -> None:
    colours = ["Red", "Blue", "Green", "White", "Black", "Yellow", "Pink", "Grey"]
    kinds = {"mug": "Ceramic Coffee Mug", "lamp": "Bedside Reading Lamp", "sock": "Wool Socks"}
    items = [
        (f"{kind}{n}", f"{colour} {title} {n + 1}", "")
        for kind, title in kinds.items()
        for n, colour in enumerate(colours)
    ]
    assert (
        run_ingest(database_url, write(tmp_path / "shop.csv", shop_events(items))).returncode == 0
    )
    report = build_features(conn, themes="auto")
    assert report.theme_choice == "learned"
    found = themes_by_sku(conn)
    by_kind = {kind: {found[f"{kind}{n}"] for n in range(len(colours))} for kind in kinds}
    assert all(len(themes) == 1 for themes in by_kind.values()), by_kind
    names = {theme for ((theme, source),) in by_kind.values() if source == "learned"}
    assert len(names) == 3, by_kind
    for kind, ((name, _),) in by_kind.items():
        assert name is not None
        # Named by words of the group's titles, never a colour (every group has them) or number.
        assert set(name.split(" and ")) <= set(kinds[kind].split()), name
    assert build_features(conn, themes="learned").themes == report.themes  # deterministic
