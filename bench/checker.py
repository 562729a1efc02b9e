"""An independent fact checker for served reasons.

It reads a reason as the shopper reads it (slots filled), parses each sentence back into
claims by their value patterns ("in 3 orders", "12 days", "12%", "3.4 times", "number 4",
"November 2011", "£1.65") and the key words near them, recomputes every claim in plain SQL
from the raw `interaction`, `item` and `app_user` rows, and gives it a verdict:

- true: what it says holds;
- misleading: its numbers hold, but it is weak evidence (a cadence from gaps that disagree, a
  co-purchase no likelier than chance, a rank that only the shopper's own orders make);
- false: it does not hold;
- unverified: a sentence, number or name no claim explains. These are reported, never passed.

It shares no code with app/ on purpose: a checker that reused app/reasons' evidence code would
repeat its mistakes and call them true. It is written from the schema (app/db/tables.py) and
the definitions in app/reasons/evidence.py's docstring alone, so the two can only agree by
both being right. The language model writes the same values in freer words than the template,
which is why it parses values and key words rather than the guide's sentences.

    claims = check_reason(conn, "12345", 42, "Because you bought ...", as_of, "£")
    print(summarise([("template", claim) for claim in claims]))

`check_reason` builds the shop's baskets as a temporary table on first use per connection and
as_of (`prepare`), so checking many reasons costs a few small queries each.
"""

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

import numpy as np
import psycopg

Verdict = Literal["true", "misleading", "false", "unverified"]
VERDICTS: tuple[Verdict, ...] = ("true", "misleading", "false", "unverified")

DAY_S = 86_400
# The thresholds of the definitions.
MIN_GAPS, MAX_SPREAD = 2, 2.0
DUE_FROM, OVERDUE_AFTER = 0.75, 1.5
MIN_LIFT = 1.5
MIN_OTHER_BUYERS, TOP_RANK = 5, 10
PRICE_BELOW, PRICE_ABOVE = 0.8, 1.25
# A name shorter than its item's title must be the title cut near 60 characters, not a word or
# two that many titles start with.
MIN_CUT_CHARS = 40


@dataclass
class Claim:
    kind: str
    text: str  # the sentence the claim was read from, as the shopper reads it
    verdict: Verdict
    detail: str


# The baskets of every shopper before as_of, one row per (basket, item): an order is the
# purchase lines sharing an order id (the schema gives every purchase one: the source's, or the
# session the ingest derived; a line without one would be an order of its own); its time is
# its first line's.
BASKETS_SQL = """
CREATE TEMP TABLE checker_basket AS
WITH line AS (
    SELECT user_id, item_id, occurred_at,
           coalesce(order_id, 'line:' || id) AS key
    FROM interaction
    WHERE event_type = 'purchase' AND occurred_at < %(as_of)s
), basket AS (
    SELECT user_id, key, min(occurred_at) AS at, row_number() OVER () AS basket
    FROM line
    GROUP BY user_id, key
)
SELECT DISTINCT b.basket, l.user_id, l.item_id, b.at
FROM line l JOIN basket b USING (user_id, key)
"""
# The recommended item and every item the shopper bought or put in the cart.
ITEMS_SQL = """
SELECT id, display_title, theme, price FROM item
WHERE id = %(target)s OR id IN (
    SELECT item_id FROM interaction
    WHERE user_id = %(user)s AND event_type IN ('purchase', 'add_to_cart')
      AND occurred_at < %(as_of)s
)
"""
ORDERS_SQL = """
SELECT item_id, extract(epoch FROM at)::float8 FROM checker_basket
WHERE user_id = %(user)s ORDER BY item_id, at
"""
# The cart: what the shopper added after their last purchase, less than cart_ttl_h hours ago.
CART_SQL = """
SELECT DISTINCT item_id FROM interaction
WHERE user_id = %(user)s AND event_type = 'add_to_cart' AND occurred_at < %(as_of)s
  AND occurred_at > %(as_of)s - make_interval(hours => %(cart_ttl_h)s)
  AND occurred_at > coalesce(
      (SELECT max(occurred_at) FROM interaction
       WHERE user_id = %(user)s AND event_type = 'purchase' AND occurred_at < %(as_of)s),
      '-infinity')
"""
VOCABULARY_SQL = """
SELECT DISTINCT 'theme', theme FROM item WHERE theme IS NOT NULL
UNION SELECT DISTINCT 'country', country FROM app_user WHERE country IS NOT NULL
"""
# Prices are in cents, so a median is a multiple of half a cent: rounding percentile_cont's
# float to 3 places gives it exactly (17.565, not 17.564999...).
TYPICAL_PRICE_SQL = """
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price)::numeric, 3) FROM interaction
WHERE item_id = %(item)s AND event_type = 'purchase' AND unit_price IS NOT NULL
  AND occurred_at < %(as_of)s
"""
PAID_SQL = """
SELECT unit_price, sum(quantity) FROM interaction
WHERE user_id = %(user)s AND event_type = 'purchase' AND unit_price IS NOT NULL
  AND occurred_at < %(as_of)s
GROUP BY unit_price ORDER BY unit_price
"""
CO_PURCHASE_SQL = """
SELECT (SELECT count(*) FROM checker_basket WHERE item_id = %(x)s),
       (SELECT count(*) FROM checker_basket WHERE item_id = %(target)s),
       (SELECT count(*) FROM checker_basket x
        JOIN checker_basket t ON t.basket = x.basket AND t.item_id = %(target)s
        WHERE x.item_id = %(x)s),
       (SELECT baskets FROM checker_meta)
"""
# The item's rank in a month by distinct buyers, then orders (ties share a rank), among the
# shoppers of one country or (country NULL) all shoppers; and whether the shopper is a buyer.
POPULARITY_SQL = """
WITH month AS (
    SELECT b.item_id, b.user_id FROM checker_basket b JOIN app_user u ON u.id = b.user_id
    WHERE b.at >= %(start)s AND b.at < %(end)s
      AND (%(country)s::text IS NULL OR lower(u.country) = lower(%(country)s::text))
), per_item AS (
    SELECT item_id, count(DISTINCT user_id) AS buyers, count(*) AS orders,
           coalesce(bool_or(user_id = %(user)s), false) AS own
    FROM month GROUP BY item_id
), ranked AS (
    SELECT item_id, buyers, own, rank() OVER (ORDER BY buyers DESC, orders DESC) AS rank
    FROM per_item
)
SELECT rank, buyers, own FROM ranked WHERE item_id = %(item)s
"""


def prepare(conn: psycopg.Connection, as_of: datetime) -> None:
    """The baskets before as_of as the temporary table checker_basket (kept while the
    connection is open, rebuilt for another as_of)."""
    as_of = _utc(as_of)
    (exists,) = _one(conn, "SELECT to_regclass('pg_temp.checker_meta') IS NOT NULL")
    if exists and _one(conn, "SELECT as_of FROM checker_meta")[0] == as_of:
        return
    conn.execute("DROP TABLE IF EXISTS pg_temp.checker_basket, pg_temp.checker_meta")
    conn.execute(BASKETS_SQL, {"as_of": as_of})
    conn.execute("CREATE INDEX ON checker_basket (item_id, basket)")
    conn.execute("CREATE INDEX ON checker_basket (user_id, item_id)")
    conn.execute("CREATE INDEX ON checker_basket (at)")
    conn.execute("ANALYZE checker_basket")
    conn.execute(
        "CREATE TEMP TABLE checker_meta AS SELECT %(as_of)s::timestamptz AS as_of,"
        " (SELECT count(DISTINCT basket) FROM checker_basket) AS baskets",
        {"as_of": as_of},
    )


def check_reason(
    conn: psycopg.Connection,
    user_id: str,
    item_id: int,
    reason: str,
    as_of: datetime,
    currency_symbol: str | None,
    cart_ttl_h: int = 72,
) -> list[Claim]:
    """The claims of one served reason with their verdicts. user_id is the shopper's
    external id, item_id the recommended item's id; currency_symbol is the symbol the shop's
    amounts carry ("£"), None when they carry none; cart_ttl_h the shop's cart age limit
    (RECS_CART_TTL_H)."""
    prepare(conn, as_of)
    facts = _Facts(conn, user_id, item_id, _utc(as_of), cart_ttl_h)
    return _Reader(facts, currency_symbol).read(reason)


def summarise(claims: list[tuple[str, Claim]]) -> str:
    """Markdown: per label (e.g. the writer) and claim kind, the verdict counts and the
    precision (true claims / all claims); then every claim that is not true, verbatim."""
    counts: Counter[tuple[str, str, Verdict]] = Counter()
    for label, claim in claims:
        counts[label, claim.kind, claim.verdict] += 1
        counts[label, "all", claim.verdict] += 1
    rows = sorted(
        {(label, kind) for label, kind, _ in counts}, key=lambda r: (r[0], r[1] == "all", r[1])
    )
    lines = [
        "| writer | claim kind | true | misleading | false | unverified | precision |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, kind in rows:
        n = [counts[label, kind, verdict] for verdict in VERDICTS]
        kind_cell = "**all**" if kind == "all" else kind
        lines.append(f"| {label} | {kind_cell} | {' | '.join(map(str, n))} | {n[0] / sum(n):.1%} |")
    lines.append("")
    lines.append("Precision: true claims / all claims of the row, unverified ones included.")
    flagged = [(label, claim) for label, claim in claims if claim.verdict != "true"]
    lines += ["", f"Claims that are not true ({len(flagged)}):", ""]
    lines += [
        f"- {label}, {claim.kind}, **{claim.verdict}**: `{claim.text}` ({claim.detail})"
        for label, claim in flagged
    ]
    return "\n".join(lines) + "\n"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _one(
    conn: psycopg.Connection, query: str, params: dict[str, object] | None = None
) -> tuple[Any, ...]:
    row = conn.execute(query, params).fetchone()
    assert row is not None, query
    return row


@dataclass(frozen=True)
class _Item:
    title: str
    theme: str | None
    price: Decimal | None


@dataclass(frozen=True)
class _Cadence:
    median: float  # days
    steady: bool  # >= MIN_GAPS gaps whose upper quartile is at most MAX_SPREAD x the lower
    gaps: int


class _Facts:
    """The rows one reason is checked against: the shopper's items, orders and cart at once,
    prices, co-purchases and ranks when a claim asks."""

    def __init__(
        self, conn: psycopg.Connection, user_id: str, target: int, as_of: datetime, cart_ttl_h: int
    ):
        self.conn, self.target, self.as_of = conn, target, as_of
        row = conn.execute(
            "SELECT id, country FROM app_user WHERE external_id = %s", (user_id,)
        ).fetchone()
        self.user: int | None = row[0] if row else None
        self.country: str | None = row[1] if row else None
        params = {"user": self.user, "target": target, "as_of": as_of, "cart_ttl_h": cart_ttl_h}
        self.items = {
            i: _Item(title, theme, price)
            for i, title, theme, price in conn.execute(ITEMS_SQL, params)
        }
        self.orders: dict[int, list[float]] = {}
        for i, at in conn.execute(ORDERS_SQL, params):
            self.orders.setdefault(i, []).append(at)
        self.cart = {i for (i,) in conn.execute(CART_SQL, params)}
        vocabulary = conn.execute(VOCABULARY_SQL).fetchall()
        self.themes = [word for kind, word in vocabulary if kind == "theme"]
        self.countries = [word for kind, word in vocabulary if kind == "country"]

    def title(self, item: int) -> str:
        return self.items[item].title if item in self.items else f"item {item}"

    def order_count(self, item: int) -> int:
        return len(self.orders.get(item, []))

    def days_since(self, item: int) -> int | None:
        times = self.orders.get(item)
        return int((self.as_of.timestamp() - times[-1]) // DAY_S) if times else None

    def cadence(self, item: int) -> _Cadence | None:
        gaps = np.diff(np.asarray(self.orders.get(item, []), dtype=np.float64)) / DAY_S
        gaps = gaps[gaps >= 1]
        if len(gaps) == 0:
            return None
        low, median, high = np.percentile(gaps, [25, 50, 75])
        steady = len(gaps) >= MIN_GAPS and high <= MAX_SPREAD * low
        return _Cadence(float(median), bool(steady), len(gaps))

    @cached_property
    def typical_price(self) -> Decimal | None:
        """The median unit price paid for the recommended item, else its list price."""
        (median,) = _one(self.conn, TYPICAL_PRICE_SQL, {"item": self.target, "as_of": self.as_of})
        if median is not None:
            return Decimal(str(median))
        return self.items[self.target].price if self.target in self.items else None

    @cached_property
    def usual_price(self) -> Decimal | None:
        """The shopper's quantity-weighted median unit price: the first price at which the
        units bought reach half of all their units."""
        rows = self.conn.execute(PAID_SQL, {"user": self.user, "as_of": self.as_of}).fetchall()
        total, units = sum(n for _, n in rows), 0
        for price, n in rows:
            units += n
            if 2 * units >= total:
                return Decimal(price)
        return None

    def co_purchase(self, x: int) -> tuple[int, int, int, int]:
        """Orders (of all shoppers) holding x, holding the target, holding both; all orders."""
        row = _one(self.conn, CO_PURCHASE_SQL, {"x": x, "target": self.target})
        return (row[0], row[1], row[2], row[3])

    def popularity(self, month: date, country: str | None) -> tuple[int, int, bool] | None:
        """(rank, buyers, the shopper is one) of the target in a month, or None if unbought."""
        end = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        row = self.conn.execute(
            POPULARITY_SQL,
            {
                "start": datetime(month.year, month.month, 1, tzinfo=UTC),
                "end": datetime(end.year, end.month, 1, tzinfo=UTC),
                "country": country,
                "user": self.user,
                "item": self.target,
            },
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None


# A name or theme in a sentence becomes one private-use character, so that the patterns below
# never read a title's digits or words ("Set of 4 ...") as a claim's.
NAME_BASE, THEME_BASE = 0xF000, 0xF400
NAME = "[\uf000-\uf3ff]"
THEME = "[\uf400-\uf7ff]"
WORD = re.compile(r"[^\W_]+")
TAG = re.compile(r"<[^>]*>?")
MONTHS = (
    "january february march april may june july august september october november december".split()
)
MONTH_ALTERNATIVES = "|".join(MONTHS)

SENTENCE_END = re.compile(r"(?<=[.!?])(?<!\b[Nn]o\.)\s+")
NOTHING = re.compile(r"\s*recommended for you\.?\s*", re.I)
# A name that is none of the shopper's items nor the recommended one: a capitalised run of words
# after a word that introduces an item, up to a word that starts a claim. A number is part of it
# only before another word ("Cakestand 3 tier"), not before "times", "orders" or "days".
UNKNOWN_NAME = re.compile(
    r"(?i:\b(?:bought|ordered|buy|buys|the|with|like|as|your))\s+"
    r"(?P<name>[A-Z][\w'&/.-]*(?:\s+(?!(?i:you|is|in|once|twice|and|so|this|it|to|for|at|are"
    r"|was|were|has|from|because|since|which|that|also|orders?|times|days?)\b)"
    r"(?:(?!\d)[\w'&/-]+|\d+(?=\s+(?!(?i:times|orders?|days?|weeks?|months?|years?)\b)[A-Za-z])))*)"
)
IN_THE = re.compile(r"\bin\s+the\s+$", re.I)
SUBJECT = re.compile(rf"{NAME}|\b(?:this|it)\b", re.I)

AMOUNT = re.compile(
    r"(?P<symbol>[£€¥₹]|(?:US|AU|CA|NZ|HK|A|C)?\$|\b(?:GBP|EUR|USD)\b)\s?"
    r"(?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)"
    r"|(?<![\d.,])(?P<bare>(?:\d{1,3}(?:,\d{3})+|\d+)\.\d{2})(?![\d%])(?!\s?(?:times|x)\b)"
)
USUAL_BEFORE = re.compile(
    r"(?:\busual(?:\s+(?:price|spend))?(?:\s+of)?|\b(?:usually|typically|normally)\s+"
    r"(?:pay|spend)(?:\s+about)?)\s*\(?\s*$",
    re.I,
)
USUAL_AFTER = re.compile(
    r"^\s*\)?\s*(?:that\s+)?you\s+(?:usually|typically|normally)\s+(?:pay|spend)", re.I
)
PRICE_WORDS = re.compile(r"\b(?:pay|paid|price[ds]?|spend|costs?|sells? for)\b", re.I)
DIRECTIONS = [
    (
        "below",
        re.compile(
            r"\b(?:below|less than|cheaper|bargain|budget|saving|lower price|costs less)\b", re.I
        ),
    ),
    (
        "above",
        re.compile(
            r"\b(?:above|more than|step up|splurge|pricier|premium|more expensive|higher price)\b",
            re.I,
        ),
    ),
    (
        "close",
        re.compile(
            r"\b(?:close to|in line with|about what you|about your usual|similar to)\b", re.I
        ),
    ),
]

RANK = re.compile(r"(?:\bnumber|\bno\.|#)\s?(\d+)\b", re.I)
POPULAR = re.compile(
    r"\b(?:best[- ]sellers?|top[- ]sellers?|most (?:bought|popular)|popular)\b", re.I
)
MONTH = re.compile(rf"\b({MONTH_ALTERNATIVES})\s+(\d{{4}})\b", re.I)
ALL_SHOPPERS = re.compile(r"\bacross the (?:shop|store)\b|\b(?:all|every) shoppers\b", re.I)
ANY_PLACE = re.compile(
    rf"\bin\s+(?:the\s+)?(?P<place>(?!(?i:{MONTH_ALTERNATIVES})\b)[A-Z][\w.'-]*(?:\s+[A-Z][\w.'-]*)*)"
)

SHARE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
TIMES = re.compile(r"(\d+(?:\.\d+)?)\s?(?P<unit>times|x)\b", re.I)
LIFT_WORDS = re.compile(
    r"as often|as likely|usual rate|average|chance|more often|more likely", re.I
)

DAYS = re.compile(
    r"\b(?P<days>\d+)[\s-]days?\b"
    r"|\b(?:has|have|it's|it is)\s+been\s+(?P<bare>\d+)\b"
    r"(?!\s*(?:days?|weeks?|months?|years?|%|orders?|times)\b)",
    re.I,
)
CADENCE_BEFORE = re.compile(
    r"(?:\bevery|\busual(?:\s+(?:gap|interval|cycle))?(?:\s+(?:is|of))?|\bgaps?\s+of)\s+"
    r"(?:about\s+|around\s+|roughly\s+|some\s+)?$",
    re.I,
)
CADENCE_AFTER = re.compile(r"^\s*(?:between orders|apart|cycle)", re.I)
SINCE_BEFORE = re.compile(r"\bbeen\s+(?:about\s+|around\s+|over\s+)?$", re.I)
SINCE_AFTER = re.compile(r"^\s*(?:ago|since)\b", re.I)

COUNT = re.compile(
    r"\b(?P<word>once|twice|thrice)\b"
    r"|\b(?:in\s+)?(?P<n>\d+)\s+(?:separate\s+|different\s+)?(?:orders?|times)\b",
    re.I,
)
COUNT_WORDS = {"once": 1, "twice": 2, "thrice": 3}
CART = re.compile(r"\byour\s+(?:shopping\s+)?(?:cart|basket|trolley)\b", re.I)
STATES = [
    (
        "due",
        re.compile(
            r"\b(?:due|top[- ]up|on schedule|running low|restock|time to (?:re-?)?order)\b", re.I
        ),
    ),
    ("overdue", re.compile(r"\b(?:overdue|longer than your usual|past your usual)\b", re.I)),
    ("steady", re.compile(r"\b(?:regular|usually (?:buy|re-?order|order|get|pick))\b", re.I)),
    ("repeat", re.compile(r"\b(?:keep coming back|repeat buys?|favou?rites?)\b", re.I)),
    ("again", re.compile(r"\b(?:again|before|back for more)\b", re.I)),
]
BOUGHT_BEFORE = re.compile(r"\b(?:bought|ordered|purchased)\s+(?:the\s+)?$", re.I)
BOUGHT_AFTER = re.compile(
    r"^\s*(?:that\s+|which\s+)?you(?:'ve|\s+have)?\s+(?:already\s+)?(?:bought|ordered|purchased)\b",
    re.I,
)
HAVE_BEFORE = re.compile(r"\byou\s+(?:already\s+)?(?:have|own)\s+(?:the\s+)?$", re.I)
YOUR_BEFORE = re.compile(r"\byour\s+$", re.I)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Better verdicts first: a name shared by two items is judged by the one it can mean truly.
RANKING: dict[Verdict, int] = {"true": 0, "misleading": 1, "false": 2, "unverified": 3}


def _words(title: str) -> list[str]:
    """A title's words as a served name keeps them: markup and punctuation dropped."""
    title = TAG.sub(" ", unicodedata.normalize("NFKC", html.unescape(title)))
    return [w.lower() for w in WORD.findall(title)]


def _marks(text: str, spans: list[tuple[int, int]], base: int) -> str:
    """text with each (sorted, disjoint) span replaced by the character base + its index."""
    out, last = [], 0
    for index, (start, end) in enumerate(spans):
        out += [text[last:start], chr(base + index)]
        last = end
    return "".join(out) + text[last:]


@dataclass(frozen=True)
class _Mention:
    text: str
    items: tuple[int, ...]  # () for a name that is no item the reason may name


class _Sentence:
    """One sentence in the making of its claims: which spans and names a claim explains."""

    def __init__(self, text: str, shown: str):
        self.text, self.shown = text, shown
        self.claims: list[tuple[int, Claim]] = []
        self.taken: list[tuple[int, int]] = []
        self.named: set[int] = set()  # mentions a claim is about

    def free(self, span: tuple[int, int]) -> bool:
        return all(span[1] <= start or end <= span[0] for start, end in self.taken)

    def add(
        self, at: int, kind: str, verdict: Verdict, detail: str, span: tuple[int, int] | None = None
    ) -> None:
        self.claims.append((at, Claim(kind, self.shown, verdict, detail)))
        if span is not None:
            self.taken.append(span)


class _Reader:
    def __init__(self, facts: _Facts, currency: str | None):
        self.facts, self.currency = facts, currency
        self.mentions: list[_Mention] = []
        self.themes: list[str] = []

    def read(self, reason: str) -> list[Claim]:
        text = self._mask(unicodedata.normalize("NFKC", reason).strip())
        claims: list[Claim] = []
        for part in SENTENCE_END.split(text):
            if part.strip():
                claims += self._sentence(_Sentence(part, self._shown(part)))
        if not claims:
            claims.append(Claim("unparsed", reason, "unverified", "an empty reason"))
        return claims

    # Names and themes

    def _mask(self, text: str) -> str:
        text = self._mask_names(text)
        text = self._mask_themes(text)
        # Names of items the reason has no business naming, kept so a claim on one is false;
        # places ("in the United Kingdom") and months are not names.
        countries = {c.lower() for c in self.facts.countries}
        spans, names = [], []
        for m in UNKNOWN_NAME.finditer(text):
            name = m.group("name").rstrip(".")
            place = name.lower() in countries or IN_THE.search(text[: m.start("name")])
            if not place and not name.lower().startswith(tuple(MONTHS)):
                spans.append((m.start("name"), m.start("name") + len(name)))
                names.append(name)
        base = NAME_BASE + len(self.mentions)
        self.mentions += [_Mention(name, ()) for name in names]
        return _marks(text, spans, base)

    def _mask_names(self, text: str) -> str:
        """Each name of the recommended item or one of the shopper's items, longest first: a
        word-prefix of its title, case and punctuation aside."""
        tokens = list(WORD.finditer(text))
        words = [t.group().lower() for t in tokens]
        titles: dict[tuple[str, ...], list[int]] = {}
        for item_id, item in self.facts.items.items():
            if title := tuple(_words(item.title)):
                titles.setdefault(title, []).append(item_id)
        found = []
        for title, ids in titles.items():
            for i, word in enumerate(words):
                if word != title[0]:
                    continue
                n = 0
                while n < len(title) and i + n < len(words) and words[i + n] == title[n]:
                    n += 1
                if n == len(title) or len(" ".join(title[:n])) >= MIN_CUT_CHARS:
                    found.append((i, n, tuple(ids)))
        chosen: list[tuple[int, int, tuple[int, ...]]] = []
        used: set[int] = set()
        for i, n, items in sorted(found, key=lambda f: -f[1]):
            if used.isdisjoint(range(i, i + n)):
                used.update(range(i, i + n))
                chosen.append((i, n, items))
        chosen.sort()
        spans = [(tokens[i].start(), tokens[i + n - 1].end()) for i, n, _ in chosen]
        self.mentions = [
            _Mention(text[start:end], items)
            for (start, end), (_, _, items) in zip(spans, chosen, strict=True)
        ]
        return _marks(text, spans, NAME_BASE)

    def _mask_themes(self, text: str) -> str:
        if not self.facts.themes:
            return text
        names = sorted(self.facts.themes, key=len, reverse=True)
        alternatives = "|".join(r"\s+".join(map(re.escape, t.split())) for t in names)
        theme = re.compile(
            rf"\b(?:more|same|from|in|with|of|another)\s+(?:the\s+)?(?P<theme>{alternatives})(?!\w)",
            re.I,
        )
        matches = list(theme.finditer(text))
        self.themes = [m.group("theme") for m in matches]
        return _marks(text, [m.span("theme") for m in matches], THEME_BASE)

    def _shown(self, text: str) -> str:
        """The text as the shopper reads it: every mark back to its words."""
        return re.sub(
            f"{NAME}|{THEME}",
            lambda m: (
                self.mentions[ord(m.group()) - NAME_BASE].text
                if ord(m.group()) < THEME_BASE
                else self.themes[ord(m.group()) - THEME_BASE]
            ),
            text,
        ).strip()

    def _subject(self, s: _Sentence, at: int) -> tuple[tuple[int, ...], int | None]:
        """What a number or word at `at` is about: the nearest name or "this"/"it" before it,
        else after it, else the recommended item; and the mention, if a name."""
        subjects = list(SUBJECT.finditer(s.text))
        before = [m for m in subjects if m.end() <= at]
        after = [m for m in subjects if m.start() >= at]
        m = before[-1] if before else after[0] if after else None
        if m is None or not re.fullmatch(NAME, m.group()):
            return (self.facts.target,), None
        k = ord(m.group()) - NAME_BASE
        return self.mentions[k].items, k

    def _anchor(self, s: _Sentence, at: int) -> int | None:
        """The name nearest `at` that is not (only) the recommended item."""
        names = [
            m
            for m in re.finditer(NAME, s.text)
            if self.mentions[ord(m.group()) - NAME_BASE].items != (self.facts.target,)
        ]
        if not names:
            return None
        return ord(min(names, key=lambda m: abs(m.start() - at)).group()) - NAME_BASE

    # Sentences

    def _sentence(self, s: _Sentence) -> list[Claim]:
        if NOTHING.fullmatch(s.shown):
            return [Claim("none", s.shown, "true", "claims nothing")]
        for read in (
            self._amounts,
            self._popularity,
            self._co_purchase,
            self._days,
            self._counts,
            self._cart,
            self._theme,
            self._states,
            self._directions,
            self._plain_names,
        ):
            read(s)
        for m in NUMBER.finditer(s.text):
            if s.free(m.span()):
                s.add(
                    m.start(),
                    "unparsed",
                    "unverified",
                    f"a number no claim explains: {m.group()!r}",
                )
        for k in sorted({ord(c) - NAME_BASE for c in re.findall(NAME, s.text)} - s.named):
            if not self.mentions[k].items:
                s.add(
                    0, "unparsed", "unverified", f"names an unknown item: {self.mentions[k].text!r}"
                )
        if not s.claims:
            s.add(0, "unparsed", "unverified", "no claim recognised")
        return [claim for _, claim in sorted(s.claims, key=lambda c: c[0])]

    def _judge(
        self, items: tuple[int, ...], judge: Callable[[int], tuple[Verdict, str]]
    ) -> tuple[Verdict, str]:
        if not items:
            return "false", "names an item that is neither recommended nor the shopper's"
        return min((judge(item) for item in items), key=lambda r: RANKING[r[0]])

    def _amounts(self, s: _Sentence) -> None:
        f = self.facts
        for m in AMOUNT.finditer(s.text):
            number = m.group("number") or m.group("bare")
            stated = Decimal(number.replace(",", ""))
            symbol = m.group("symbol")
            usual = USUAL_BEFORE.search(s.text[: m.start()]) or USUAL_AFTER.match(s.text[m.end() :])
            if usual:
                actual, kind = f.usual_price, "usual_price"
                what = "the shopper's quantity-weighted median unit price"
            else:
                actual, kind = f.typical_price, "price"
                what = f"the median unit price paid for {f.title(f.target)}"
            if actual is None:
                verdict: Verdict = "false"
                detail = f"said {m.group().strip()}; there is no {what}"
            else:
                verdict = "true" if abs(actual - stated) <= Decimal("0.005") else "false"
                detail = f"said {stated}; {what} is {actual:.2f}"
            s.add(m.start(), kind, verdict, detail, m.span())
            s.add(m.start(), "currency", *self._currency(symbol))

    def _currency(self, symbol: str | None) -> tuple[Verdict, str]:
        expected = self.currency.strip() if self.currency else None
        if symbol == expected:
            return "true", f"amount written with {symbol or 'no symbol'}, as the shop writes it"
        if expected is None:
            return "false", f"a currency symbol ({symbol}) where the shop's amounts carry none"
        if symbol is None:
            return "misleading", f"an amount without the shop's currency symbol ({expected})"
        return "false", f"{symbol} where the shop's currency is {expected}"

    def _popularity(self, s: _Sentence) -> None:
        ranks = [m for m in RANK.finditer(s.text) if s.free(m.span())]
        popular = POPULAR.search(s.text)
        if not ranks and not popular:
            return
        f = self.facts
        month_match = MONTH.search(s.text)
        month = None
        if month_match:
            s.taken.append(month_match.span())
            month = date(
                int(month_match.group(2)), MONTHS.index(month_match.group(1).lower()) + 1, 1
            )
        place = self._place(s)
        # Ranked among the shoppers the sentence names; without a place, the shopper's own.
        country = place[1] if place else f.country
        if place is not None:
            at, stated_country = place[0], place[1]
            if stated_country is None and f.country is None:
                s.add(
                    at, "popularity_scope", "true", "all shoppers, and the shopper has no country"
                )
            elif stated_country is None:
                s.add(
                    at,
                    "popularity_scope",
                    "false",
                    f"across the shop, but the shopper is in {f.country}",
                )
            elif f.country is None:
                s.add(
                    at,
                    "popularity_scope",
                    "false",
                    f"names {stated_country}, but the shopper has no country",
                )
            elif stated_country.lower() == f.country.lower():
                s.add(at, "popularity_scope", "true", f"the shopper is in {f.country}")
            else:
                s.add(
                    at,
                    "popularity_scope",
                    "false",
                    f"names {stated_country}, but the shopper is in {f.country}",
                )
        claims: list[tuple[int, int | None, tuple[int, int] | None]] = [
            (m.start(), int(m.group(1)), m.span()) for m in ranks
        ]
        if not claims and popular:
            claims = [(popular.start(), None, None)]
        for at, stated, span in claims:
            if month is None:
                s.add(
                    at, "popularity_rank", "unverified", "a rank without a month to rank in", span
                )
                continue
            scope = f"shoppers in {country}" if country else "all shoppers"
            row = f.popularity(month, country)
            if row is None:
                s.add(
                    at, "popularity_rank", "false", f"no {scope} bought it in {month:%B %Y}", span
                )
                continue
            rank, buyers, own = row
            others = buyers - int(own)
            said = f"number {stated}" if stated is not None else repr(popular and popular.group())
            detail = (
                f"said {said}; rank {rank} among {scope} in {month:%B %Y}, {buyers} buyers,"
                f" {others} besides the shopper"
            )
            if stated is not None and stated != rank:
                verdict: Verdict = "false"
            elif others < MIN_OTHER_BUYERS or (popular and rank > TOP_RANK):
                verdict = "misleading"
            else:
                verdict = "true"
            s.add(at, "popularity_rank", verdict, detail, span)

    def _place(self, s: _Sentence) -> tuple[int, str | None] | None:
        """(where, the country or None for all shoppers) a popularity claim names."""
        if m := ALL_SHOPPERS.search(s.text):
            s.taken.append(m.span())
            return m.start(), None
        countries = sorted(self.facts.countries, key=len, reverse=True)
        known = re.compile(
            r"\bin\s+(?:the\s+)?(?P<place>" + "|".join(map(re.escape, countries)) + r")\b", re.I
        )
        m = (known.search(s.text) if countries else None) or ANY_PLACE.search(s.text)
        if m is None:
            return None
        s.taken.append(m.span())
        return m.start(), m.group("place")

    def _co_purchase(self, s: _Sentence) -> None:
        f = self.facts
        found = [("co_share", m) for m in SHARE.finditer(s.text)]
        for m in TIMES.finditer(s.text):
            lift_like = "." in m.group(1) or m.group("unit").lower() == "x"
            if lift_like or LIFT_WORDS.search(s.text[m.end() :]):
                found.append(("co_lift", m))
        for kind, m in found:
            if not s.free(m.span()):
                continue
            k = self._anchor(s, m.start())
            if k is None:
                s.add(
                    m.start(), "unparsed", "unverified", f"{m.group()!r} of no named item", m.span()
                )
                continue
            s.named.add(k)
            stated = float(m.group(1))

            def judge(
                x: int, kind: str = kind, stated: float = stated, said: str = m.group()
            ) -> tuple[Verdict, str]:
                with_x, with_target, both, baskets = f.co_purchase(x)
                if not with_x or not with_target:
                    return "false", f"no order holds both {f.title(x)} and this"
                share = 100 * both / with_x
                lift = (both / with_x) / (with_target / baskets)
                detail = (
                    f"said {said}; {both} of {with_x} orders with {f.title(x)} hold this"
                    f" ({share:.1f}%), {with_target} of {baskets} orders do (lift {lift:.2f})"
                )
                if kind == "co_share":
                    right = abs(share - stated) <= 0.5 + 1e-9
                else:
                    right = abs(lift - stated) <= 0.05 + 1e-9
                if not right:
                    return "false", detail
                weak = share < 0.5 or lift < MIN_LIFT
                return (
                    ("misleading", detail + ": no likelier than chance")
                    if weak
                    else ("true", detail)
                )

            items = tuple(i for i in self.mentions[k].items if i != f.target)
            s.add(m.start(), kind, *self._judge(items, judge), m.span())

    def _days(self, s: _Sentence) -> None:
        f = self.facts
        for m in DAYS.finditer(s.text):
            if not s.free(m.span()):
                continue
            before, after = s.text[: m.start()], s.text[m.end() :]
            if m.group("bare") or SINCE_AFTER.match(after) or SINCE_BEFORE.search(before):
                kind = "days_since"
            elif CADENCE_BEFORE.search(before) or CADENCE_AFTER.match(after):
                kind = "cadence"
            else:
                continue  # left for the leftover check: a number of days no claim explains
            stated = int(m.group("days") or m.group("bare"))
            items, k = self._subject(s, m.start())
            if k is not None:
                s.named.add(k)

            def judge(item: int, kind: str = kind, stated: int = stated) -> tuple[Verdict, str]:
                name = f.title(item)
                if kind == "days_since":
                    since = f.days_since(item)
                    if since is None:
                        return "false", f"said {stated} days; the shopper never ordered {name}"
                    detail = f"said {stated} days; the last order of {name} was {since} days ago"
                    return ("true" if since == stated else "false"), detail
                cadence = f.cadence(item)
                if cadence is None:
                    return "false", f"said every {stated} days; {name} has no gaps of a day or more"
                detail = (
                    f"said {stated} days; median of {cadence.gaps} gaps between orders of {name}:"
                    f" {cadence.median:.1f} days, {'steady' if cadence.steady else 'not steady'}"
                )
                if abs(cadence.median - stated) > 0.5:
                    return "false", detail
                return ("true" if cadence.steady else "misleading"), detail

            s.add(m.start(), kind, *self._judge(items, judge), m.span())

    def _counts(self, s: _Sentence) -> None:
        f = self.facts
        for m in COUNT.finditer(s.text):
            if not s.free(m.span()):
                continue
            stated = COUNT_WORDS[m.group("word").lower()] if m.group("word") else int(m.group("n"))
            items, k = self._subject(s, m.start())
            if k is not None:
                s.named.add(k)
            kind = "repurchase_orders" if items == (f.target,) else "anchor_orders"

            def judge(item: int, stated: int = stated) -> tuple[Verdict, str]:
                orders = f.order_count(item)
                right = orders == stated and orders > 0
                return (
                    "true" if right else "false"
                ), f"said {stated}; {orders} orders hold {f.title(item)}"

            s.add(m.start(), kind, *self._judge(items, judge), m.span())

    def _cart(self, s: _Sentence) -> None:
        f = self.facts
        for m in CART.finditer(s.text):
            items, k = self._subject(s, m.start())
            if k is not None:
                s.named.add(k)

            def judge(item: int) -> tuple[Verdict, str]:
                if item in f.cart:
                    return "true", f"{f.title(item)} was added to the cart after the last purchase"
                return (
                    "false",
                    f"{f.title(item)} is not in the cart (no add after the last purchase)",
                )

            s.add(m.start(), "anchor_cart", *self._judge(items, judge), m.span())

    def _theme(self, s: _Sentence) -> None:
        f = self.facts
        for m in re.finditer(THEME, s.text):
            theme = self.themes[ord(m.group()) - THEME_BASE]
            target = f.items.get(f.target)
            own = target.theme if target else None
            if (own or "").lower() != theme.lower():
                s.add(m.start(), "theme", "false", f"said {theme}; this is in {own}")
                continue
            k = self._anchor(s, m.start())
            if k is None:
                s.add(m.start(), "theme", "true", f"this is in {own}")
                continue
            s.named.add(k)

            def judge(x: int, theme: str = theme, own: str | None = own) -> tuple[Verdict, str]:
                other = f.items[x].theme
                verdict: Verdict = "true" if (other or "").lower() == theme.lower() else "false"
                return verdict, f"said {theme}; this is in {own}, {f.title(x)} in {other}"

            s.add(m.start(), "theme", *self._judge(self.mentions[k].items, judge))

    def _states(self, s: _Sentence) -> None:
        f = self.facts
        for state, pattern in STATES:
            m = pattern.search(s.text)
            if m is None:
                continue
            items, _ = self._subject(s, m.start())

            def judge(item: int, state: str = state, word: str = m.group()) -> tuple[Verdict, str]:
                orders, name = f.order_count(item), f.title(item)
                if state in ("repeat", "again"):
                    need = 2 if state == "repeat" else 1
                    detail = f"said {word!r}; {orders} orders hold {name}"
                    return ("true" if orders >= need else "false"), detail
                cadence, since = f.cadence(item), f.days_since(item)
                if cadence is None or since is None or not cadence.steady:
                    return "false", f"said {word!r}; {name} has no steady cadence"
                ratio = since / cadence.median
                detail = f"said {word!r}; {since} days since, median gap {cadence.median:.1f} (ratio {ratio:.2f})"
                right = {
                    "due": ratio >= DUE_FROM,
                    "overdue": ratio > OVERDUE_AFTER,
                    "steady": True,
                }[state]
                return ("true" if right else "false"), detail

            s.add(m.start(), "state", *self._judge(items, judge))

    def _directions(self, s: _Sentence) -> None:
        if not (AMOUNT.search(s.text) or PRICE_WORDS.search(s.text)):
            return
        f = self.facts
        for direction, pattern in DIRECTIONS:
            m = pattern.search(s.text)
            if m is None:
                continue
            price, usual = f.typical_price, f.usual_price
            if price is None or usual is None or usual <= 0:
                s.add(
                    m.start(),
                    "price_direction",
                    "false",
                    f"said {m.group()!r}; no price to compare",
                )
                continue
            ratio = float(price / usual)
            actual = "below" if ratio < PRICE_BELOW else "above" if ratio > PRICE_ABOVE else "close"
            verdict: Verdict = "true" if actual == direction else "false"
            detail = (
                f"said {m.group()!r}; {price:.2f} is {ratio:.2f} x the usual {usual:.2f} ({actual})"
            )
            s.add(m.start(), "price_direction", verdict, detail)

    def _plain_names(self, s: _Sentence) -> None:
        """Names with no number: "the X you bought", "You have X already", "your X"."""
        f = self.facts
        for m in re.finditer(NAME, s.text):
            k = ord(m.group()) - NAME_BASE
            if k in s.named:
                continue
            before, after = s.text[: m.start()], s.text[m.end() :]
            if (
                BOUGHT_BEFORE.search(before)
                or BOUGHT_AFTER.match(after)
                or HAVE_BEFORE.search(before)
            ):
                owned = False
            elif YOUR_BEFORE.search(before):
                owned = True  # "your X": bought, or in the cart
            else:
                continue
            s.named.add(k)

            def judge(item: int, owned: bool = owned) -> tuple[Verdict, str]:
                orders, name = f.order_count(item), f.title(item)
                if orders:
                    return "true", f"{orders} orders hold {name}"
                if owned and item in f.cart:
                    return "true", f"{name} is in the cart"
                return "false", f"the shopper never bought {name}"

            s.add(m.start(), "anchor_bought", *self._judge(self.mentions[k].items, judge))
