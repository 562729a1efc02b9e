from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.ingest.cleaning import (
    GENERIC,
    UCI_2010,
    UCI_II,
    Event,
    RowError,
    ShopLocale,
    clean_title,
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


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("THE KING GIFT BAG 25x24x12cm", "The King Gift Bag 25x24x12cm"),  # sizes don't count
        ("IHOP GIFT CARD", "Ihop Gift Card"),  # in capitals nothing tells an acronym from a word
        ("USB TV CABLE 2M", "USB TV Cable 2m"),
    ],
)
def test_titles_in_capitals_read_as_title_case(title: str, expected: str) -> None:
    assert display_title(title) == expected


@pytest.mark.parametrize(
    "title",
    ["IHOP Gift Card", "AMC Theatres $25", "iTunes Gift Card", "NASA T-Shirt", "eBay voucher",
     "LEGO Star Wars", "Red mug"],
)  # fmt: skip
def test_mixed_case_titles_keep_the_shops_casing(title: str) -> None:
    assert display_title(title) == title


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Fish &amp; Chips", "Fish & Chips"),
        ("Tom&#39;s &#x2019;Mug&#x2019;", "Tom's \u2019Mug\u2019"),
        ("&amp;lt;b&amp;gt;", "&lt;b&gt;"),  # decoded once: what the shop escaped twice shows
        ("SALT&PEPPER &copy", "SALT&PEPPER &copy"),  # no semicolon: not a reference
        ("  Red\u00a0 Mug\t\n", "Red Mug"),
        ("Mug\u202e gfi\u202c\u200b\u00ad\x07", "Mug gfi"),  # bidi, zero-width, control
        ("\U0001f469\u200d\U0001f373 apron", "\U0001f469\u200d\U0001f373 apron"),  # ZWJ emoji
    ],
)
def test_clean_title(raw: str, clean: str) -> None:
    assert clean_title(raw) == clean


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
        ({"price": "NaN"}, "price 'NaN' is not a number"),
        ({"price": "2000000000"}, "price '2000000000' is out of range"),
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


def test_naive_times_are_in_the_shops_zone_and_aware_ones_keep_theirs() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    winter = parse_datetime("2024-01-15 10:00:00", berlin)
    assert winter.astimezone(UTC) == datetime(2024, 1, 15, 9, tzinfo=UTC)
    summer = parse_datetime("7/1/2024 10:00", berlin)
    assert summer.astimezone(UTC) == datetime(2024, 7, 1, 8, tzinfo=UTC)
    assert parse_datetime("2024-01-15 10:00:00").utcoffset() == timedelta(
        0
    )  # the cache keys the zone
    aware = parse_datetime("2024-01-15T10:00:00-05:00", berlin)
    assert aware.astimezone(UTC) == datetime(2024, 1, 15, 15, tzinfo=UTC)


def test_prices_round_to_cents() -> None:
    assert parse_price("2.555") == Decimal("2.56")


USD = ShopLocale(currency="USD", locale="en_US")
EUR_DE = ShopLocale(currency="EUR", locale="de_DE")


@pytest.mark.parametrize(
    ("text", "shop", "value"),
    [
        ("3.95", ShopLocale(), "3.95"),
        ("25", USD, "25.00"),
        ("$25.00", USD, "25.00"),
        ("US$ 1,234.50", USD, "1234.50"),  # en_GB's symbol for USD
        ("USD 7", USD, "7.00"),
        ("25.00 usd", USD, "25.00"),
        ("1,234.5", USD, "1234.50"),
        ("-$3.10", USD, "-3.10"),
        ("1.234,50 €", EUR_DE, "1234.50"),
        ("€3", EUR_DE, "3.00"),
        ("3,95", EUR_DE, "3.95"),
        ("3.95", EUR_DE, "3.95"),  # not a German grouping: an export's decimal point
        ("1.234.567,00 EUR", EUR_DE, "1234567.00"),
        ("£3", ShopLocale(currency="GBP", locale="en_GB"), "3.00"),
        ("1 234,50 €", ShopLocale(currency="EUR", locale="fr_FR"), "1234.50"),
        ("CA$5", ShopLocale(currency="CAD", locale="en"), "5.00"),
        ("$5", ShopLocale(currency="CAD", locale="en_CA"), "5.00"),
        ("$5", ShopLocale(currency="CAD", locale="en"), "5.00"),  # "$" is CAD somewhere
    ],
)
def test_prices_as_shops_write_them(text: str, shop: ShopLocale, value: str) -> None:
    assert parse_price(text, shop) == Decimal(value)


@pytest.mark.parametrize(
    ("text", "shop", "message"),
    [
        ("€3", USD, "price '€3' is in EUR, the shop's currency is USD"),
        ("EUR 3", USD, "price 'EUR 3' is in EUR, the shop's currency is USD"),
        ("£3", USD, "price '£3' is in GBP, the shop's currency is USD"),
        ("$3", ShopLocale(), "carries a currency \\('\\$'\\).*set RECS_CURRENCY"),
        ("3 XYZ", USD, "'XYZ', which is neither a currency symbol nor an ISO 4217 code"),
        ("1.234", EUR_DE, "price '1.234' is ambiguous in locale de_DE.*write 1234 or 1,234"),
        ("1,234.50", EUR_DE, "price '1,234.50' is not a number as locale de_DE writes them"),
        ("3,95", USD, "price '3,95' is not a number as locale en_US writes them"),
        ("$", USD, "price '\\$' is not a number"),
        ("1e5", USD, "price '1e5'"),
    ],
)
def test_prices_that_contradict_the_shop_are_errors(
    text: str, shop: ShopLocale, message: str
) -> None:
    with pytest.raises(RowError, match=message):
        parse_price(text, shop)


def test_a_price_in_another_currency_names_the_row() -> None:
    _, parse = detect_format(GENERIC_HEADER, USD)
    with pytest.raises(RowError, match="price '€3' is in EUR"):
        parse(["u1", "i1", "2024-03-01", "purchase", "1", "€3", "t", "c"])


def test_order_ids_may_not_take_the_session_prefix() -> None:
    _, parse = detect_format([*GENERIC_HEADER, "order_id"])
    with pytest.raises(RowError, match="reserved for baskets the ingest derives"):
        parse(["u1", "i1", "2024-03-01", "purchase", "1", "3", "t", "c", "session:u1:0"])


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


@pytest.mark.parametrize(
    ("user", "item"), [("u1", "Ünï-42"), ("\uff55\uff11", "i1"), ("u1", "a\u200bb")]
)
def test_ids_the_api_could_not_address_are_errors(user: str, item: str) -> None:
    _, parse = detect_format(GENERIC_HEADER)
    with pytest.raises(RowError, match="other than printable ASCII"):
        parse([user, item, "2024-03-01", "view", "", "", "t", "c"])
