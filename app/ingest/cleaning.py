"""Source formats and cleaning rules: one raw row in, one clean event (or a drop reason) out.

Rules (first match wins, so each dropped row is counted under one reason):
- UCI Online Retail (both column schemas): drop cancellations (invoice starting with "C"), rows
  without a customer, non-product codes (postage, fees, manual adjustments, samples, gift
  vouchers, tests), quantity <= 0, unit price < 0.01 and rows without a description.
- Generic events: drop rows without a user or an item, quantity <= 0 and price < 0.01 (a price
  may be empty for views and clicks).
A value that can't be parsed at all (a number, a date, an event type) is not dropped but an error:
it means the file is not what it claims to be. So is a price in another currency than the shop's.
"""

import hashlib
import html
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import NamedTuple

from babel import Locale, localedata
from babel.numbers import (
    NumberFormatError,
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    list_currencies,
    parse_decimal,
)

from app.db.tables import EVENT_TYPES
from app.ingest.sessions import SESSION_PREFIX

MAX_ID_CHARS = 128
# A shop's id of an item or a shopper: printable ASCII, single spaces inside (the API addresses
# items and shoppers by it: app/schemas.py ShopId).
SHOP_ID_PATTERN = r"^[!-~]+( [!-~]+)*$"
_SHOP_ID = re.compile(SHOP_ID_PATTERN)
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


@dataclass(frozen=True)
class ShopLocale:
    """How a shop's files write what the rows can't say themselves: the currency of its prices
    (ISO 4217; None: prices must be bare numbers), the Babel locale whose separators its amounts
    use, and the time zone of times written without one."""

    currency: str | None = None
    locale: str = "en"
    zone: tzinfo = UTC


# Bare-number prices, English separators, times without a zone in UTC.
DEFAULT_SHOP = ShopLocale()


Parser = Callable[[list[str]], Event | str]
"""Turns a row into an Event, or returns the reason it is dropped; raises RowError."""


@dataclass(frozen=True)
class SourceFormat:
    name: str
    columns: tuple[str, ...]  # required, as the source spells them
    optional: tuple[str, ...]
    make_parser: Callable[[dict[str, int], ShopLocale], Parser]


def _key(column: str) -> str:
    """Header matching ignores case, spaces and underscores ("Customer ID" == "CustomerID")."""
    return re.sub(r"[^a-z0-9]", "", column.lower())


def _clean_text(value: str) -> str:
    # Control characters have no business in ids or titles; runs of spaces neither.
    return " ".join(value.split())


# Only complete references ("&amp;", "&#39;", "&#x2019;"): html.unescape alone also decodes
# legacy names without the semicolon, which would turn "SALT&PEPPER&copy" half into markup.
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Zero-width joiners stay: they are part of emoji and of Persian and Indic spellings.
_KEPT_FORMAT_CHARACTERS = frozenset("\u200c\u200d")


def clean_title(value: str) -> str:
    """A title or category as a shop's export may write it: HTML entities decoded, control and
    format characters (bidi overrides, zero-width spaces, soft hyphens) dropped, whitespace
    collapsed and trimmed. Casing is left alone (see display_title)."""
    decoded = _ENTITY.sub(lambda entity: html.unescape(entity.group()), value)
    kept = "".join(
        ch
        for ch in decoded
        if ch.isspace()
        or ch in _KEPT_FORMAT_CHARACTERS
        or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    return _clean_text(kept)


def _bounded(value: str, what: str, limit: int) -> str:
    if len(value) > limit:
        raise RowError(f"{what} is longer than {limit} characters")
    return value


def parse_quantity(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RowError(f"quantity {text[:40]!r} is not a whole number") from None


# A bare number as machines write it ("3.95", "-12"): read as is, whatever the locale.
_MACHINE_NUMBER = re.compile(r"[+-]?\d+(?:\.(\d+))?")
# Anything else: a currency marker before and/or after a number written in the shop's locale.
_WRITTEN_AMOUNT = re.compile(r"(?P<before>\D*?)(?P<number>\d(?:[\d.,'\u2019\s]*\d)?)(?P<after>\D*)")


def parse_price(text: str, shop: ShopLocale = DEFAULT_SHOP) -> Decimal:
    """A unit price from "3.95", "1,234.50", "$25.00", "US$ 1,234.50", "1.234,50 €" or "£3".

    Separators follow the shop's locale (de_DE: "1.234,50"), checked by Babel's strict parser.
    One form is read the same in every locale: a bare number with a decimal point, as exports
    write them. In a locale that groups thousands with "." that reading is ambiguous when exactly
    three digits follow the only point ("1.234": 1234 or 1.234?), so that is an error, never a
    guess. A currency marker (symbol or ISO code) must denote the shop's currency."""
    text = text.strip()
    shown = repr(text[:40])
    machine = _MACHINE_NUMBER.fullmatch(text)
    if machine is not None:
        fraction = machine.group(1)
        if fraction is not None and len(fraction) == 3 and get_group_symbol(shop.locale) == ".":
            raise RowError(
                f"price {shown} is ambiguous in locale {shop.locale}, which groups thousands"
                f" with '.': write {text.replace('.', '')} or {text.replace('.', ',')}"
            )
        value = Decimal(text)
    else:
        value = _written_amount(text, shown, shop)
    if abs(value) >= 10**9:
        raise RowError(f"price {shown} is out of range")
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _written_amount(text: str, shown: str, shop: ShopLocale) -> Decimal:
    match = _WRITTEN_AMOUNT.fullmatch(text)
    if match is None:
        raise RowError(f"price {shown} is not a number")
    before, number, after = match.group("before", "number", "after")
    negative = "-" in before
    for marker in (before.replace("-", "").replace("+", "").strip(), after.strip()):
        if marker:
            problem = _currency_problem(marker, shop.currency, shop.locale)
            if problem:
                raise RowError(f"price {shown} {problem}")
    group = get_group_symbol(shop.locale)
    if group.isspace():  # fr_FR groups with U+202F; files write a plain or no-break space
        number = re.sub(r"\s", group, number)
    try:
        value = parse_decimal(number, shop.locale, strict=True)
    except NumberFormatError:
        raise RowError(
            f"price {shown} is not a number as locale {shop.locale} writes them ({group!r}"
            f" groups thousands, {get_decimal_symbol(shop.locale)!r} marks decimals); set"
            " RECS_LOCALE to the shop's"
        ) from None
    return -value if negative else value


@lru_cache(maxsize=1024)
def _currency_problem(marker: str, currency: str | None, locale: str) -> str | None:
    """What is wrong with a price carrying `marker`, or None when it denotes `currency`."""
    if currency is None:
        return (
            f"carries a currency ({marker!r}) but the shop's currency is not configured:"
            " set RECS_CURRENCY to its ISO 4217 code"
        )
    code = marker.upper()
    if code == currency or marker == get_currency_symbol(currency, locale):
        return None
    if code in list_currencies():
        return f"is in {code}, the shop's currency is {currency}"
    # Another locale's symbol for the same currency ("US$" is USD in en_GB, "$" in en is USD
    # but in en_CA CAD): the configured currency settles what an ambiguous symbol means.
    anywhere = _symbols_in_all_locales().get(marker, frozenset())
    if currency in anywhere:
        return None
    here = {c for c, symbol in Locale.parse(locale).currency_symbols.items() if symbol == marker}
    named = sorted(here or anywhere)
    if not named:
        return f"carries {marker!r}, which is neither a currency symbol nor an ISO 4217 code"
    return f"is in {' or '.join(named[:5])}, the shop's currency is {currency}"


@lru_cache(maxsize=1)
def _symbols_in_all_locales() -> dict[str, frozenset[str]]:
    """Currency symbol -> the currencies some Babel locale writes with it (about 3 s, once;
    only for a marker the shop's own locale does not settle)."""
    found: defaultdict[str, set[str]] = defaultdict(set)
    for name in localedata.locale_identifiers():
        for code, symbol in Locale.parse(name).currency_symbols.items():
            found[symbol].add(code)
    return {symbol: frozenset(codes) for symbol, codes in found.items()}


_dates: dict[tuple[str, tzinfo], datetime] = {}


def parse_datetime(text: str, zone: tzinfo = UTC) -> datetime:
    """ISO 8601 or the UCI export's "12/1/2010 8:26". A time without a zone is in `zone` (at a
    daylight-saving change, an ambiguous time is taken as its first occurrence); a time with
    one keeps it."""
    key = (text, zone)
    cached = _dates.get(key)
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
        value = value.replace(tzinfo=zone)
    if not 1990 <= value.year <= 2100:
        raise RowError(f"date {text[:40]!r} is out of range")
    if len(_dates) < 1_000_000:
        _dates[key] = value
    return value


def shop_id(text: str, what: str) -> str:
    """An item's or shopper's id as the API will take it; empty when the row has none."""
    value = _bounded(text, what, MAX_ID_CHARS)
    if value and not _SHOP_ID.match(value):
        raise RowError(
            f"{what} {value[:40]!r} holds characters other than printable ASCII and single"
            " spaces; the API could not address it"
        )
    return value


def order_id(text: str, what: str = "order_id") -> str | None:
    """The order id of a row, if any; the session prefix is reserved for derived baskets."""
    value = _bounded(text, what, MAX_ID_CHARS)
    if value.startswith(SESSION_PREFIX):
        raise RowError(
            f"order id {value[:40]!r} starts with {SESSION_PREFIX!r}, which is reserved for"
            " baskets the ingest derives"
        )
    return value or None


def _uci_parser(index: dict[str, int], shop: ShopLocale) -> Parser:
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
        invoice = order_id(row[i_invoice].strip(), "invoice") or ""
        code = shop_id(row[i_code].strip().upper(), "stock code")
        quantity = parse_quantity(row[i_quantity])
        price = parse_price(row[i_price], shop)
        occurred_at = parse_datetime(row[i_date].strip(), shop.zone)
        customer = shop_id(row[i_customer].strip().removesuffix(".0"), "customer")
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
        title = _bounded(clean_title(row[i_title]), "description", MAX_TITLE_CHARS)
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
            order_id=invoice or None,
            occurred_at=occurred_at,
        )

    return parse


def _generic_parser(index: dict[str, int], shop: ShopLocale) -> Parser:
    width = max(index.values()) + 1
    seen: dict[str, int] = {}

    def cell(row: list[str], name: str) -> str:
        position = index.get(name)
        return "" if position is None else _clean_text(row[position])

    def parse(row: list[str]) -> Event | str:
        if len(row) < width:
            raise RowError(f"expected {width} fields, found {len(row)}")
        user = shop_id(cell(row, "userid"), "user_id")
        sku = shop_id(cell(row, "itemid"), "item_id")
        occurred_at = parse_datetime(cell(row, "occurredat"), shop.zone)
        event_type = cell(row, "event").lower()
        if event_type not in EVENT_TYPES:
            raise RowError(f"event {event_type[:40]!r} is not one of {', '.join(EVENT_TYPES)}")
        quantity_text = cell(row, "quantity")
        quantity = parse_quantity(quantity_text) if quantity_text else 1
        price_text = cell(row, "price")
        price = parse_price(price_text, shop) if price_text else None
        title = _bounded(clean_title(cell(row, "title")), "title", MAX_TITLE_CHARS) or None
        category = _bounded(clean_title(cell(row, "category")), "category", MAX_TITLE_CHARS) or None
        country = _bounded(cell(row, "country"), "country", MAX_ID_CHARS) or None
        order = order_id(cell(row, "orderid"))
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
            order_id=order,
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


def detect_format(
    header: Sequence[str], shop: ShopLocale = DEFAULT_SHOP
) -> tuple[SourceFormat, Parser]:
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
    return best, best.make_parser(index, shop)


_SMALL_WORDS = frozenset("a an and at by for in of on or the to with".split())
_ACRONYMS = frozenset("UK USA LED DIY 3D TV CD DVD USB ABC".split())
_SEGMENT = re.compile(r"[^\s/-]+|[\s/-]+")


# Of a title's cased letters, the share in capitals from which it is "written in capitals".
MOSTLY_UPPER = 0.8


def display_title(title: str) -> str:
    """The title as shown. A shop that writes titles in capitals (the UCI shop does) gets them in
    title case ("T-Light Holder, 15cm"), listed acronyms kept ("UK Flag LED Lights"); any other
    title is the shop's own casing ("iTunes", "IHOP Gift Card") and is kept as written.

    In a capitals title every other word is capitalised like a word, all-consonant ones too:
    in the UCI titles those are mostly abbreviations ("HLDR", "SML", "MR"), not acronyms."""
    # Sizes ("25x24x12cm") are lower case in capitals titles too: they don't count.
    cased = [
        ch
        for word in title.split()
        if not any(c.isdigit() for c in word)
        for ch in word
        if ch.isupper() or ch.islower()
    ]
    if not cased or sum(ch.isupper() for ch in cased) < MOSTLY_UPPER * len(cased):
        return title
    words: list[str] = []
    for segment in _SEGMENT.findall(title):
        upper = segment.upper()
        if segment[0] in " \t/-":
            words.append(segment)
        elif upper in _ACRONYMS:
            words.append(upper)
        elif any(ch.isdigit() for ch in segment) or (words and segment.lower() in _SMALL_WORDS):
            words.append(segment.lower())  # a size or a count: "15CM" -> "15cm"
        else:
            lower = segment.lower()
            first = next((i for i, ch in enumerate(lower) if ch.isalpha()), None)
            words.append(lower if first is None else lower[:first] + lower[first:].capitalize())
    return "".join(words)
