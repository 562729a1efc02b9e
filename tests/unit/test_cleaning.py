from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.ingest.cleaning import (
    GENERIC,
    UCI_2010,
    UCI_II,
    Event,
    RowError,
    detect_format,
    display_title,
    parse_datetime,
    parse_price,
)

UCI_2010_HEADER = [
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
    "Country",
]  # fmt: skip
UCI_II_HEADER = [
    "Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID",
    "Country",
]  # fmt: skip
GENERIC_HEADER = ["user_id", "item_id", "occurred_at", "event", "quantity", "price", "title",
                  "category"]  # fmt: skip


def uci_row(**overrides: str) -> list[str]:
    row = {
        "invoice": "536365", "code": "85123A", "title": "WHITE HANGING HEART T-LIGHT HOLDER",
        "quantity": "6", "date": "2010-12-01 08:26:00", "price": "2.55", "customer": "17850",
        "country": "United Kingdom",
    }  # fmt: skip
    row.update(overrides)
    return list(row.values())


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "White Hanging Heart T-Light Holder"),
        ("15CM CHRISTMAS GLASS BALL 20 LIGHTS", "15cm Christmas Glass Ball 20 Lights"),
        ("SET OF 3 CAKE TINS PANTRY DESIGN", "Set of 3 Cake Tins Pantry Design"),
        ("PINK/WHITE DOLLY'S BAG", "Pink/White Dolly's Bag"),
        ("(SET/6) UK FLAG LED LIGHTS", "(Set/6) UK Flag LED Lights"),
        ("OF MICE AND MEN", "Of Mice and Men"),
    ],
)
def test_display_title_reads_as_title_case(title: str, expected: str) -> None:
    assert display_title(title) == expected


def test_header_detection_picks_each_format() -> None:
    assert detect_format(UCI_2010_HEADER)[0] is UCI_2010
    assert detect_format(UCI_II_HEADER)[0] is UCI_II
    assert detect_format(GENERIC_HEADER)[0] is GENERIC
    assert detect_format(GENERIC_HEADER[:4])[0] is GENERIC  # the rest is optional


def test_header_missing_a_column_names_it() -> None:
    with pytest.raises(RowError, match=r"missing column\(s\) Country for the UCI Online Retail II"):
        detect_format(UCI_II_HEADER[:-1])


def test_unknown_header_lists_the_expected_columns() -> None:
    with pytest.raises(RowError, match="unrecognised header; expected the columns of one of"):
        detect_format(["a", "b", "c"])


def test_uci_row_becomes_a_purchase() -> None:
    _, parse = detect_format(UCI_2010_HEADER)
    event = parse(uci_row())
    assert event == Event(
        event_id="uci:536365:85123A:0",
        user="17850",
        country="United Kingdom",
        sku="85123A",
        title="WHITE HANGING HEART T-LIGHT HOLDER",
        category=None,
        event_type="purchase",
        quantity=6,
        unit_price=Decimal("2.55"),
        order_id="536365",
        occurred_at=datetime(2010, 12, 1, 8, 26, tzinfo=UTC),
    )


def test_repeated_lines_of_an_invoice_get_numbered_ids() -> None:
    _, parse = detect_format(UCI_II_HEADER)
    first, second = parse(uci_row()), parse(uci_row())
    assert isinstance(first, Event)
    assert isinstance(second, Event)
    assert (first.event_id, second.event_id) == ("uci:536365:85123A:0", "uci:536365:85123A:1")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"invoice": "C536379", "quantity": "-1"}, "cancellation"),
        ({"customer": ""}, "no customer"),
        ({"code": "POST"}, "non-product code"),
        ({"code": "BANK CHARGES"}, "non-product code"),
        ({"code": "gift_0001_20"}, "non-product code"),
        ({"quantity": "0"}, "quantity <= 0"),
        ({"price": "0.00"}, "price < 0.01"),
        ({"price": "0.001"}, "price < 0.01"),
        ({"title": "   "}, "no description"),
    ],
)
def test_uci_cleaning_rules(overrides: dict[str, str], reason: str) -> None:
    _, parse = detect_format(UCI_2010_HEADER)
    assert parse(uci_row(**overrides)) == reason


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quantity": "six"}, "quantity 'six' is not a whole number"),
        ({"price": "2,55"}, "price '2,55' is not a number"),
        ({"price": "NaN"}, "price 'NaN' is out of range"),
        ({"date": "yesterday"}, "date 'yesterday' is not a date and time"),
        ({"date": "1899-01-01 00:00"}, "out of range"),
        ({"customer": "x" * 500}, "customer is longer than 128 characters"),
    ],
)
def test_unparseable_values_are_errors_not_drops(overrides: dict[str, str], message: str) -> None:
    _, parse = detect_format(UCI_2010_HEADER)
    with pytest.raises(RowError, match=message):
        parse(uci_row(**overrides))


def test_short_row_is_an_error() -> None:
    _, parse = detect_format(UCI_2010_HEADER)
    with pytest.raises(RowError, match="expected 8 fields, found 3"):
        parse(["1", "2", "3"])


def test_xlsx_style_customer_ids_lose_the_float_suffix() -> None:
    _, parse = detect_format(UCI_II_HEADER)
    event = parse(uci_row(customer="17850.0"))
    assert isinstance(event, Event)
    assert event.user == "17850"


def test_dates_in_the_uci_export_format_and_with_zones() -> None:
    assert parse_datetime("12/1/2010 8:26") == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert parse_datetime("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_prices_round_to_cents() -> None:
    assert parse_price("2.555") == Decimal("2.56")


def test_generic_row_and_derived_ids() -> None:
    _, parse = detect_format(GENERIC_HEADER)
    row = ["u1", "sku-9", "2024-03-01T10:00:00+01:00", "Add_To_Cart", "", "", "Red  Mug", "Mugs"]
    first, again = parse(row), parse(list(row))
    assert isinstance(first, Event)
    assert isinstance(again, Event)
    assert first.event_type == "add_to_cart"
    assert first.quantity == 1
    assert first.unit_price is None
    assert first.title == "Red Mug"
    assert first.category == "Mugs"
    assert first.event_id.endswith(":0")
    assert again.event_id == first.event_id[:-1] + "1"


def test_generic_unknown_event_is_an_error() -> None:
    _, parse = detect_format(GENERIC_HEADER)
    with pytest.raises(RowError, match="event 'like' is not one of view, click"):
        parse(["u1", "i1", "2024-03-01", "like", "1", "2", "t", "c"])


def test_generic_explicit_event_id_is_kept() -> None:
    _, parse = detect_format([*GENERIC_HEADER, "event_id"])
    event = parse(["u1", "i1", "2024-03-01", "view", "", "", "", "", "evt-42"])
    assert isinstance(event, Event)
    assert event.event_id == "evt-42"
