"""The reason fact checker (bench/checker.py) on hand-built rows where every value is known.

The world, as of 2011-12-01 00:00 UTC (all orders at 10:00 UTC unless said):

- "fr-shopper" (France) bought
  - the lunch bag in 2 orders on 4 lines: order F1 on 2011-06-01 (2 lines) and two lines on
    2011-07-01 at 10:00 and 10:40 without a source order id, stored as the ingest stores them:
    in one session, whose id is the order id;
  - the tea set in 1 order on 2 lines (F1);
  - the wrap (12 units a line) on 2010-06-01, 2010-06-18 and 2011-08-06: gaps of 17 and 414 days;
  - the jam set on 2011-05-25, 2011-08-23 and 2011-11-21 12:00: every 90 days, 9 days ago;
  - the jumbo bag (the usual target) on 2011-09-27, 10-17 and 11-06: every 20 days, 24 ago;
  - the doily tin once, on 2011-11-10;
  and carted the lunch box on 2011-05-01 (before later purchases: not in the cart) and the cake
  cases on 2011-11-30 (after the last purchase and within the 72-hour cart age: in the cart)
  and the wrap on 2011-11-26 (after the last purchase, but too long ago: not in the cart).
- "anon-shopper" (no country) bought the jumbo bag once, on 2011-11-15 12:00.
- fr1..fr7 (France) each bought the heart holder in November; fr1..fr5 with the jumbo bag in
  the same order. fr1..fr4 bought the lunch bag with the jumbo bag in March, fr5 and fr6 the
  lunch bag alone. nc1 and nc2 (no country) bought the jumbo bag in November; a filler shopper
  (no country) bought the filler item in 32 orders in 2010.

So 60 orders in all, 15 with the jumbo bag, 8 with the lunch bag, 4 with both: 50% of orders
with the lunch bag hold the jumbo bag, lift 0.5 / (15/60) = 2.0. In November, in France the
heart holder has 7 buyers (rank 1), the jumbo bag 6 (rank 2), the doily tin and jam set only
fr-shopper (rank 3); across the shop the jumbo bag has 9 (rank 1). fr-shopper's units: 36 at
0.42, 4 at 1.65, 3 at 2.08, 1 at 3.00, 3 at 4.25, 2 at 4.95: the weighted median is 0.42 (an
unweighted median of lines would be 2.08). The jumbo bag's lines: 12 at 2.08, 3 at 2.50.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import psycopg
import pytest

from app.db.engine import drop_database, ensure_database, libpq_url
from app.db.migrate import upgrade
from bench.checker import Claim, check_reason, summarise
from tests.conftest import new_database_url

AS_OF = datetime(2011, 12, 1, tzinfo=UTC)
ITEMS = {  # short name: (display title, theme, list price)
    "lunch_bag": ("Red Retrospot Lunch Bag", "Bags and purses", "1.65"),
    "tea_set": ("Retrospot Tea Set", "Kitchen and dining", "4.95"),
    "cake_cases": ("Pack of 72 Retrospot Cake Cases", "Cake and baking", "0.55"),
    "lunch_box": ("Lunch Box I Love London", "Bags and purses", "1.95"),
    "wrap": ("Blue Polkadot Wrap", "Cards and wrap", "0.42"),
    "jam_set": ("Jam Making Set With Jars", "Kitchen and dining", "4.25"),
    "doily_tin": ("Vintage Doily Tin", "Kitchen and dining", "3.00"),
    "heart": ("White Hanging Heart T-Light Holder", "Candles and T-lights", "2.55"),
    "jumbo_bag": ("Jumbo Bag Red Retrospot", "Bags and purses", "2.08"),
    "sideboard": ("Painted Wooden Sideboard", "Furniture", "1234.50"),  # never bought
    "filler": ("Filler Item", None, "1.00"),
}


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


@dataclass(frozen=True)
class World:
    conn: psycopg.Connection
    items: dict[str, int]


class Rows:
    """Inserts users, items and events with psycopg, numbering event ids."""

    def __init__(self, conn: psycopg.Connection):
        self.conn, self.events = conn, count()
        self.users: dict[str, int] = {}
        self.items: dict[str, int] = {}

    def user(self, external_id: str, country: str | None) -> None:
        row = self.conn.execute(
            "INSERT INTO app_user (external_id, country, first_seen_at) VALUES (%s, %s, %s)"
            " RETURNING id",
            (external_id, country, at("2010-01-01")),
        ).fetchone()
        assert row is not None
        self.users[external_id] = row[0]

    def item(self, name: str, title: str, theme: str | None, price: str) -> None:
        row = self.conn.execute(
            "INSERT INTO item (sku, title, display_title, price, theme, first_seen_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (name, title.upper(), title, price, theme, at("2010-01-01")),
        ).fetchone()
        assert row is not None
        self.items[name] = row[0]

    def event(
        self,
        user: str,
        item: str,
        when: datetime,
        order_id: str | None,
        price: str,
        quantity: int = 1,
        event_type: str = "purchase",
    ) -> None:
        self.conn.execute(
            "INSERT INTO interaction (event_id, user_id, item_id, event_type, quantity,"
            " unit_price, order_id, occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                f"e{next(self.events)}",
                self.users[user],
                self.items[item],
                event_type,
                quantity,
                price,
                order_id,
                when,
            ),
        )


def build(conn: psycopg.Connection) -> dict[str, int]:
    rows = Rows(conn)
    for name, (title, theme, price) in ITEMS.items():
        rows.item(name, title, theme, price)
    rows.user("fr-shopper", "France")
    rows.user("anon-shopper", None)
    for n in range(1, 8):
        rows.user(f"fr{n}", "France")
    for name in ("nc1", "nc2", "filler-shopper"):
        rows.user(name, None)

    fr = "fr-shopper"
    for _ in range(2):  # two lines of each in one order
        rows.event(fr, "lunch_bag", at("2011-06-01"), "F1", "1.65")
        rows.event(fr, "tea_set", at("2011-06-01"), "F1", "4.95")
    session = f"session:{fr}:{int(at('2011-07-01', 10).timestamp())}"
    rows.event(fr, "lunch_bag", at("2011-07-01", 10), session, "1.65")
    rows.event(fr, "lunch_bag", at("2011-07-01", 10) + timedelta(minutes=40), session, "1.65")
    for n, day in enumerate(("2010-06-01", "2010-06-18", "2011-08-06")):
        rows.event(fr, "wrap", at(day), f"FE{n}", "0.42", quantity=12)
    for n, when in enumerate((at("2011-05-25"), at("2011-08-23"), at("2011-11-21", 12))):
        rows.event(fr, "jam_set", when, f"FG{n}", "4.25")
    for n, day in enumerate(("2011-09-27", "2011-10-17", "2011-11-06")):
        rows.event(fr, "jumbo_bag", at(day), f"FT{n}", "2.08")
    rows.event(fr, "doily_tin", at("2011-11-10"), "FH", "3.00")
    rows.event(fr, "lunch_box", at("2011-05-01"), None, "1.95", event_type="add_to_cart")
    rows.event(fr, "cake_cases", at("2011-11-30"), None, "0.55", event_type="add_to_cart")
    rows.event(fr, "wrap", at("2011-11-26"), None, "0.42", event_type="add_to_cart")

    rows.event("anon-shopper", "jumbo_bag", at("2011-11-15", 12), "N1", "2.50")
    for n in range(1, 8):
        rows.event(f"fr{n}", "heart", at(f"2011-11-{n + 1:02d}"), f"P{n}", "2.55")
        if n <= 5:
            rows.event(f"fr{n}", "jumbo_bag", at(f"2011-11-{n + 1:02d}"), f"P{n}", "2.08")
        if n <= 6:
            rows.event(f"fr{n}", "lunch_bag", at(f"2011-03-{n + 1:02d}"), f"M{n}", "1.65")
        if n <= 4:
            rows.event(f"fr{n}", "jumbo_bag", at(f"2011-03-{n + 1:02d}"), f"M{n}", "2.08")
    for name in ("nc1", "nc2"):
        rows.event(name, "jumbo_bag", at("2011-11-20"), f"{name}-1", "2.50")
    for n in range(32):
        rows.event(
            "filler-shopper", "filler", at("2010-01-01") + timedelta(days=n), f"S{n}", "1.00"
        )
    return rows.items


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    url = new_database_url("checker")
    ensure_database(url)
    try:
        upgrade(url)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            yield World(conn, build(conn))
    finally:
        drop_database(url)


def check(
    world: World, user: str, item: str, reason: str, currency: str | None = "£"
) -> list[Claim]:
    return check_reason(world.conn, user, world.items[item], reason, AS_OF, currency)


def verdicts(
    world: World, user: str, item: str, reason: str, currency: str | None = "£"
) -> list[tuple[str, str]]:
    """(kind, verdict) of each claim, in the order of the reason."""
    return [(c.kind, c.verdict) for c in check(world, user, item, reason, currency)]


FR, ANON = "fr-shopper", "anon-shopper"


def test_anchor_counts_are_orders_never_lines(world: World) -> None:
    # Four lines of the lunch bag in two orders (one of them a session without a source id).
    assert verdicts(
        world, FR, "jumbo_bag", "Because you bought Red retrospot lunch bag in 2 orders."
    ) == [("anchor_orders", "true")]
    assert verdicts(world, FR, "jumbo_bag", "You bought Red retrospot lunch bag in 4 orders.") == [
        ("anchor_orders", "false")
    ]
    # Two lines of the tea set in one order.
    [claim] = check(world, FR, "jumbo_bag", "You bought Retrospot tea set in 2 orders.")
    assert (claim.kind, claim.verdict) == ("anchor_orders", "false")
    assert "1 orders hold Retrospot Tea Set" in claim.detail
    assert verdicts(
        world, FR, "jumbo_bag", "Since you bought Retrospot tea set once, this one should appeal."
    ) == [("anchor_orders", "true")]


def test_cart_and_plain_anchors(world: World) -> None:
    # The name's "72" is part of the name, not a number to explain.
    assert verdicts(
        world,
        FR,
        "jumbo_bag",
        "Chosen to go with the Pack of 72 retrospot cake cases in your cart.",
    ) == [("anchor_cart", "true")]
    # Carted before later purchases: no longer in the cart.
    assert verdicts(
        world, FR, "jumbo_bag", "It goes with the Lunch box i love london in your cart."
    ) == [("anchor_cart", "false")]
    # Carted after the last purchase, but longer ago than the cart keeps a line.
    assert verdicts(
        world, FR, "jumbo_bag", "It goes with the Blue polkadot wrap in your cart."
    ) == [("anchor_cart", "false")]
    # In the cart but never bought.
    assert verdicts(world, FR, "jumbo_bag", "You bought Pack of 72 retrospot cake cases once.") == [
        ("anchor_orders", "false")
    ]
    assert verdicts(
        world, FR, "jumbo_bag", "Picked for you after the Red retrospot lunch bag you bought."
    ) == [("anchor_bought", "true")]
    assert verdicts(world, FR, "jumbo_bag", "You have Lunch box i love london already.") == [
        ("anchor_bought", "false")
    ]


def test_repurchase_days_cadence_and_state(world: World) -> None:
    # Orders 20 days apart, the last 24 days ago: ratio 1.2, due.
    reason = "Due a top-up: you buy this about every 20 days, and it has been 24 days."
    assert verdicts(world, FR, "jumbo_bag", reason) == [
        ("state", "true"),
        ("cadence", "true"),
        ("days_since", "true"),
    ]
    assert verdicts(
        world, FR, "jumbo_bag", "You keep coming back to this one: bought in 3 orders to date."
    ) == [
        ("state", "true"),
        ("repurchase_orders", "true"),
    ]
    assert verdicts(
        world,
        FR,
        "jumbo_bag",
        "It has been 24 days since your last order, longer than your usual 20 days.",
    ) == [
        ("days_since", "true"),
        ("state", "false"),  # ratio 1.2 is not overdue
        ("cadence", "true"),
    ]
    assert verdicts(world, ANON, "jumbo_bag", "You bought this once, 15 days ago.") == [
        ("repurchase_orders", "true"),
        ("days_since", "true"),
    ]
    assert verdicts(world, ANON, "jumbo_bag", "You bought this in 2 orders, 14 days ago.") == [
        ("repurchase_orders", "false"),
        ("days_since", "false"),
    ]


def test_a_cadence_from_gaps_that_disagree_is_not_true(world: World) -> None:
    # Gaps of 17 and 414 days: median 215.5, but the upper quartile is 6x the lower.
    reason = "You usually reorder this every 216 days, and it has been 116 days."
    assert verdicts(world, FR, "wrap", reason) == [
        ("state", "false"),
        ("cadence", "misleading"),
        ("days_since", "true"),
    ]
    assert verdicts(world, FR, "wrap", "You reorder this about every 17 days.") == [
        ("cadence", "false")
    ]


def test_running_low_when_just_bought_is_false(world: World) -> None:
    # Every 90 days, the last 9 days ago: ratio 0.1.
    reason = "Running low, perhaps: you reorder about every 90 days, and it has been 9 days."
    claims = check(world, FR, "jam_set", reason)
    assert [(c.kind, c.verdict) for c in claims] == [
        ("state", "false"),
        ("cadence", "true"),
        ("days_since", "true"),
    ]
    assert "ratio 0.10" in claims[0].detail


def test_co_purchase_share_and_lift(world: World) -> None:
    assert verdicts(
        world, FR, "jumbo_bag", "50% of orders with Red retrospot lunch bag include this too."
    ) == [("co_share", "true")]
    reason = "Shoppers who buy Red retrospot lunch bag pick this up 2.0 times as often as average."
    assert verdicts(world, FR, "jumbo_bag", reason) == [("co_lift", "true")]
    assert verdicts(
        world, FR, "jumbo_bag", "Orders with Red retrospot lunch bag hold this in 30% of cases."
    ) == [("co_share", "false")]
    reason = (
        "It is bought alongside Red retrospot lunch bag 3.0 times as often as chance would suggest."
    )
    assert verdicts(world, FR, "jumbo_bag", reason) == [("co_lift", "false")]
    # The tea set's one order does not hold the jumbo bag: a 0% share is no evidence.
    assert verdicts(
        world, FR, "jumbo_bag", "0% of orders with Retrospot tea set include this too."
    ) == [("co_share", "misleading")]


def test_popularity_rank_and_scope(world: World) -> None:
    reason = "It was number 2 with shoppers in France in November 2011."
    assert verdicts(world, FR, "jumbo_bag", reason) == [
        ("popularity_rank", "true"),
        ("popularity_scope", "true"),
    ]
    reason = "It was number 1 with shoppers across the shop in November 2011."
    assert verdicts(world, ANON, "jumbo_bag", reason) == [
        ("popularity_rank", "true"),
        ("popularity_scope", "true"),
    ]
    # The shopper has a country: "across the shop" is the wrong scope, though rank 1 holds.
    assert verdicts(world, FR, "jumbo_bag", reason) == [
        ("popularity_rank", "true"),
        ("popularity_scope", "false"),
    ]
    assert verdicts(
        world, FR, "jumbo_bag", "Shoppers in France made it number 1 in November 2011."
    ) == [
        ("popularity_scope", "true"),
        ("popularity_rank", "false"),
    ]


def test_popularity_flags(world: World) -> None:
    # Rank 3 in France, but its only buyer there was the shopper.
    claims = check(
        world, FR, "doily_tin", "It was number 3 with shoppers in France in November 2011."
    )
    assert [(c.kind, c.verdict) for c in claims] == [
        ("popularity_rank", "misleading"),
        ("popularity_scope", "true"),
    ]
    assert "0 besides the shopper" in claims[0].detail
    # A country for a shopper who has none (and where nobody bought it); another country.
    reason = "It was number 2 with shoppers in United Kingdom in November 2011."
    assert verdicts(world, ANON, "jumbo_bag", reason) == [
        ("popularity_rank", "false"),
        ("popularity_scope", "false"),
    ]
    reason = "It was number 2 with shoppers in the United Kingdom in November 2011."
    assert verdicts(world, FR, "jumbo_bag", reason) == [
        ("popularity_rank", "false"),
        ("popularity_scope", "false"),
    ]
    # A rank needs its month.
    assert verdicts(world, FR, "jumbo_bag", "It is number 2 in France.") == [
        ("popularity_rank", "unverified"),
        ("popularity_scope", "true"),
    ]


def test_prices(world: World) -> None:
    reason = "At £2.08, it is above the £0.42 you usually pay for an item."
    assert verdicts(world, FR, "jumbo_bag", reason) == [
        ("price", "true"),
        ("currency", "true"),
        ("price_direction", "true"),
        ("usual_price", "true"),
        ("currency", "true"),
    ]
    # The wrong amount; the unweighted median of the shopper's lines; the wrong direction.
    reason = "At £2.50, it is close to the £2.08 you usually pay for an item."
    assert verdicts(world, FR, "jumbo_bag", reason) == [
        ("price", "false"),
        ("currency", "true"),
        ("price_direction", "false"),
        ("usual_price", "false"),
        ("currency", "true"),
    ]
    # A shop whose amounts carry no currency symbol.
    assert verdicts(world, FR, "jumbo_bag", "It costs 2.08, a step up for you.", currency=None) == [
        ("price", "true"),
        ("currency", "true"),
        ("price_direction", "true"),
    ]
    assert verdicts(
        world, FR, "jumbo_bag", "It costs £2.08, a step up for you.", currency=None
    ) == [
        ("price", "true"),
        ("currency", "false"),
        ("price_direction", "true"),
    ]
    # Never bought: its list price; thousands separators.
    assert verdicts(world, FR, "sideboard", "It typically sells for $1,234.50.", currency="$") == [
        ("price", "true"),
        ("currency", "true"),
    ]


def test_themes(world: World) -> None:
    assert verdicts(
        world, FR, "jumbo_bag", "More Bags and purses, like Red retrospot lunch bag."
    ) == [("theme", "true")]
    assert verdicts(
        world, FR, "jumbo_bag", "From the same Kitchen and dining range as Retrospot tea set."
    ) == [("theme", "false")]
    # The recommended item's theme matches, the named item's does not.
    assert verdicts(
        world, FR, "jumbo_bag", "It is in Bags and purses, like Retrospot tea set."
    ) == [("theme", "false")]


def test_unparsed_parts_are_reported(world: World) -> None:
    assert verdicts(world, FR, "jumbo_bag", "Recommended for you.") == [("none", "true")]
    assert verdicts(world, FR, "jumbo_bag", "Shoppers in France love it too.") == [
        ("unparsed", "unverified")
    ]
    # A number no claim explains, next to a claim that is checked.
    assert verdicts(world, FR, "jumbo_bag", "A past pick of yours, ordered 2 years ago.") == [
        ("unparsed", "unverified")
    ]
    assert verdicts(
        world, FR, "jumbo_bag", "Running low, perhaps: your usual gap is 2.0x more than usual."
    ) == [
        ("state", "true"),
        ("unparsed", "unverified"),
    ]
    # A name that is neither the shopper's nor the recommended item.
    assert verdicts(
        world, FR, "jumbo_bag", "Because you bought Regency cakestand 3 tier once."
    ) == [("anchor_orders", "false")]


def test_two_sentences_and_the_summary(world: World) -> None:
    reason = (
        "Because you bought Red retrospot lunch bag in 4 orders."
        " It was number 2 with shoppers in France in November 2011."
    )
    claims = check(world, FR, "jumbo_bag", reason)
    assert [(c.kind, c.verdict) for c in claims] == [
        ("anchor_orders", "false"),
        ("popularity_rank", "true"),
        ("popularity_scope", "true"),
    ]
    assert claims[0].text == "Because you bought Red retrospot lunch bag in 4 orders."
    report = summarise([("template", c) for c in claims])
    assert "| template | anchor_orders | 0 | 0 | 1 | 0 | 0.0% |" in report
    assert "| template | **all** | 2 | 0 | 1 | 0 | 66.7% |" in report
    assert "`Because you bought Red retrospot lunch bag in 4 orders.`" in report
