"""Source formats and cleaning rules: one raw row in, one clean event (or a drop reason) out.

Rules (first match wins, so each dropped row is counted under one reason):
- UCI Online Retail (both column schemas): drop cancellations (invoice starting with "C"), rows
  without a customer, non-product codes (postage, fees, manual adjustments, samples, gift
  vouchers, tests), quantity <= 0, unit price < 0.01 and rows without a description.
- Generic events: drop rows without a user or an item, quantity <= 0 and price < 0.01 (a price
  may be empty for views and clicks).
A value that can't be parsed at all (a number, a date, an event type) is not dropped but an error:
it means the file is not what it claims to be.
"""

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import NamedTuple

from app.db.tables import EVENT_TYPES

MAX_ID_CHARS = 128
MAX_TITLE_CHARS = 300
CENT = Decimal("0.01")

# Codes in the UCI data that are charges, fees or bookkeeping rather than products
# (23444 is "Next Day Carriage" and 23574 "PACKING CHARGE", sold under product-like codes).
NON_PRODUCT_CODES = frozenset(
    {
        "POST", "DOT", "M", "D", "C2", "C3", "S", "B", "CRUK", "PADS", "BANK CHARGES",
        "AMAZONFEE", "ADJUST", "ADJUST2", "GIFT", "23444", "23574",
    }
)  # fmt: skip
NON_PRODUCT_PREFIXES = ("GIFT_", "TEST")


class Event(NamedTuple):
    event_id: str
    user: str
    country: str | None
    sku: str
    title: str | None
    category: str | None
    event_type: str
    quantity: int
    unit_price: Decimal | None
    order_id: str | None
    occurred_at: datetime


class RowError(ValueError):
    """The row can't be read; the message says why."""


Parser = Callable[[list[str]], Event | str]
"""Turns a row into an Event, or returns the reason it is dropped; raises RowError."""


@dataclass(frozen=True)
class SourceFormat:
    name: str
    columns: tuple[str, ...]  # required, as the source spells them
    optional: tuple[str, ...]
    make_parser: Callable[[dict[str, int]], Parser]


def _key(column: str) -> str:
    """Header matching ignores case, spaces and underscores ("Customer ID" == "CustomerID")."""
    return re.sub(r"[^a-z0-9]", "", column.lower())


def _clean_text(value: str) -> str:
    # Control characters have no business in ids or titles; runs of spaces neither.
    return " ".join(value.split())


def _bounded(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise RowError(f"{what} is longer than {limit} characters")
    return value


def parse_quantity(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RowError(f"quantity {text[:40]!r} is not a whole number") from None


def parse_price(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowError(f"price {text[:40]!r} is not a number") from None
    if not value.is_finite() or abs(value) >= 10**9:
        raise RowError(f"price {text[:40]!r} is out of range")
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


_dates: dict[str, datetime] = {}


def parse_datetime(text: str) -> datetime:
    """ISO 8601 or the UCI export's "12/1/2010 8:26"; a time without a zone is taken as UTC."""
    cached = _dates.get(text)
    if cached is not None:
        return cached
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = datetime.strptime(text, "%m/%d/%Y %H:%M")
        except ValueError:
            raise RowError(f"date {text[:40]!r} is not a date and time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not 1990 <= value.year <= 2100:
        raise RowError(f"date {text[:40]!r} is out of range")
    if len(_dates) < 1_000_000:
        _dates[text] = value
    return value


def _uci_parser(index: dict[str, int]) -> Parser:
    i_invoice, i_code, i_title = index["invoice"], index["stockcode"], index["description"]
    i_quantity, i_date, i_price = index["quantity"], index["invoicedate"], index["price"]
    i_customer, i_country = index["customerid"], index["country"]
    width = len(index)
    # Identical (invoice, code) lines are numbered so the ids are stable across files:
    # an invoice present in two files gets the same event ids twice and is stored once.
    seen: dict[tuple[str, str], int] = {}

    def parse(row: list[str]) -> Event | str:
        if len(row) < width:
            raise RowError(f"expected {width} fields, found {len(row)}")
        invoice = _bounded(row[i_invoice].strip(), "invoice", MAX_ID_CHARS)
        code = _bounded(row[i_code].strip().upper(), "stock code", MAX_ID_CHARS)
        quantity = parse_quantity(row[i_quantity])
        price = parse_price(row[i_price])
        occurred_at = parse_datetime(row[i_date].strip())
        customer = _bounded(row[i_customer].strip().removesuffix(".0"), "customer", MAX_ID_CHARS)
        key = (invoice, code)
        number = seen.get(key, 0)
        seen[key] = number + 1

        if invoice.startswith("C"):
            return "cancellation"
        if not customer:
            return "no customer"
        if code in NON_PRODUCT_CODES or code.startswith(NON_PRODUCT_PREFIXES) or not code:
            return "non-product code"
        if quantity <= 0:
            return "quantity <= 0"
        if price < CENT:
            return "price < 0.01"
        title = _bounded(_clean_text(row[i_title]), "description", MAX_TITLE_CHARS)
        if not title:
            return "no description"
        country = _clean_text(row[i_country])
        return Event(
            event_id=f"uci:{invoice}:{code}:{number}",
            user=customer,
            country=None if country in ("", "Unspecified") else country,
            sku=code,
            title=title,
            category=None,
            event_type="purchase",
            quantity=quantity,
            unit_price=price,
            order_id=invoice,
            occurred_at=occurred_at,
        )

    return parse


def _generic_parser(index: dict[str, int]) -> Parser:
    width = max(index.values()) + 1
    seen: dict[str, int] = {}

    def cell(row: list[str], name: str) -> str:
        position = index.get(name)
        return "" if position is None else _clean_text(row[position])

    def parse(row: list[str]) -> Event | str:
        if len(row) < width:
            raise RowError(f"expected {width} fields, found {len(row)}")
        user = _bounded(cell(row, "userid"), "user_id", MAX_ID_CHARS)
        sku = _bounded(cell(row, "itemid"), "item_id", MAX_ID_CHARS)
        occurred_at = parse_datetime(cell(row, "occurredat"))
        event_type = cell(row, "event").lower()
        if event_type not in EVENT_TYPES:
            raise RowError(f"event {event_type[:40]!r} is not one of {', '.join(EVENT_TYPES)}")
        quantity_text = cell(row, "quantity")
        quantity = parse_quantity(quantity_text) if quantity_text else 1
        price_text = cell(row, "price")
        price = parse_price(price_text) if price_text else None
        title = _bounded(cell(row, "title"), "title", MAX_TITLE_CHARS) or None
        category = _bounded(cell(row, "category"), "category", MAX_TITLE_CHARS) or None
        country = _bounded(cell(row, "country"), "country", MAX_ID_CHARS) or None
        order_id = _bounded(cell(row, "orderid"), "order_id", MAX_ID_CHARS) or None
        event_id = _bounded(cell(row, "eventid"), "event_id", MAX_ID_CHARS)
        if not event_id:
            # No id given: identical rows are numbered, so re-reading the file adds nothing.
            digest = hashlib.sha1("\x1f".join(row).encode(), usedforsecurity=False).hexdigest()
            number = seen.get(digest, 0)
            seen[digest] = number + 1
            event_id = f"row:{digest[:24]}:{number}"

        if not user:
            return "no customer"
        if not sku:
            return "no item"
        if quantity <= 0:
            return "quantity <= 0"
        if price is not None and price < CENT:
            return "price < 0.01"
        return Event(
            event_id=event_id,
            user=user,
            country=country,
            sku=sku,
            title=title,
            category=category,
            event_type=event_type,
            quantity=quantity,
            unit_price=price,
            order_id=order_id,
            occurred_at=occurred_at,
        )

    return parse


UCI_2010 = SourceFormat(
    "UCI Online Retail",
    ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
     "CustomerID", "Country"),
    (),
    _uci_parser,
)  # fmt: skip
UCI_II = SourceFormat(
    "UCI Online Retail II",
    ("Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID",
     "Country"),
    (),
    _uci_parser,
)  # fmt: skip
GENERIC = SourceFormat(
    "generic events",
    ("user_id", "item_id", "occurred_at", "event"),
    ("quantity", "price", "title", "category", "event_id", "order_id", "country"),
    _generic_parser,
)
FORMATS = (UCI_2010, UCI_II, GENERIC)

# The two UCI schemas name the same fields differently; the parser reads these names.
_ALIASES = {"invoiceno": "invoice", "unitprice": "price"}


def detect_format(header: Sequence[str]) -> tuple[SourceFormat, Parser]:
    """Pick the format whose columns the header has most of; name what is missing."""
    present = {_key(name): position for position, name in enumerate(header)}
    best = max(FORMATS, key=lambda fmt: sum(_key(c) in present for c in fmt.columns))
    missing = [c for c in best.columns if _key(c) not in present]
    if len(missing) > len(best.columns) // 2:
        names = "; ".join(f"{fmt.name}: {', '.join(fmt.columns)}" for fmt in FORMATS)
        raise RowError(f"unrecognised header; expected the columns of one of: {names}")
    if missing:
        raise RowError(f"missing column(s) {', '.join(missing)} for the {best.name} format")
    index = {
        _ALIASES.get(_key(c), _key(c)): present[_key(c)]
        for c in best.columns + best.optional
        if _key(c) in present
    }
    return best, best.make_parser(index)


_SMALL_WORDS = frozenset("a an and at by for in of on or the to with".split())
_ACRONYMS = frozenset("UK USA LED DIY 3D TV CD DVD USB ABC".split())
_SEGMENT = re.compile(r"[^\s/-]+|[\s/-]+")


def display_title(title: str) -> str:
    """Shop titles are written in capitals; show them in title case ("T-Light Holder, 15cm")."""
    words: list[str] = []
    for segment in _SEGMENT.findall(title):
        upper = segment.upper()
        if segment[0] in " \t/-":
            words.append(segment)
        elif upper in _ACRONYMS:
            words.append(upper)
        elif any(ch.isdigit() for ch in segment) or (words and segment.lower() in _SMALL_WORDS):
            words.append(segment.lower())
        else:
            lower = segment.lower()
            first = next((i for i, ch in enumerate(lower) if ch.isalpha()), None)
            words.append(lower if first is None else lower[:first] + lower[first:].capitalize())
    return "".join(words)
