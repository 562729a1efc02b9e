"""Purchases posted without an order id join the shopper's session, as the ingest derives them."""

from datetime import UTC, datetime, timedelta

import psycopg
import pydantic
import pytest

from app.db.engine import create_engine_for_service
from app.schemas import Event
from app.serving.shoppers import NewEvent, conflicting_events, record_events

START = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def purchase(event_id: str, minutes: int, order_id: str | None = None) -> NewEvent:
    return NewEvent(
        event_id=event_id, user_id="s-1", item_id=1, event="purchase", quantity=1,
        price=None, order_id=order_id, occurred_at=START + timedelta(minutes=minutes),
        country=None,
    )  # fmt: skip


async def post(database_url: str, *events: NewEvent) -> tuple[set[str], list[str]]:
    engine = create_engine_for_service(database_url)
    try:
        async with engine.begin() as conn:
            new = await record_events(conn, events, session_gap_min=60)
            return new, await conflicting_events(conn, events, new)
    finally:
        await engine.dispose()


def stored(conn: psycopg.Connection) -> dict[str, str | None]:
    return dict(conn.execute("SELECT event_id, order_id FROM interaction").fetchall())


async def test_posted_purchases_join_or_start_sessions(
    conn: psycopg.Connection, database_url: str
) -> None:
    conn.execute(
        "INSERT INTO item (sku, title, display_title, first_seen_at) VALUES ('a', 'A', 'A', now())"
    )
    start = int(START.timestamp())
    assert await post(database_url, purchase("p1", 0)) == ({"p1"}, [])
    assert await post(database_url, purchase("p2", 59), purchase("o1", 80, "web-1")) == (
        {"p2", "o1"},
        [],
    )
    assert await post(database_url, purchase("p3", 200)) == ({"p3"}, [])
    assert stored(conn) == {
        "p1": f"session:s-1:{start}",
        "p2": f"session:s-1:{start}",  # 59 minutes after p1
        "o1": "web-1",  # the client's order: not a session
        "p3": f"session:s-1:{start + 200 * 60}",  # 141 minutes after p2
    }
    # Late purchases between p2 and p3 bridge the gap: one session from p1 on.
    assert await post(database_url, purchase("p4", 110), purchase("p5", 160)) == (
        {"p4", "p5"},
        [],
    )
    assert set(stored(conn).values()) == {f"session:s-1:{start}", "web-1"}
    # A retry (no order id, as first sent) matches its derived session: no conflict.
    assert await post(database_url, purchase("p3", 200)) == (set(), [])
    # The same event id with an order id the first one did not carry is another event.
    assert await post(database_url, purchase("p3", 200, "web-2")) == (set(), ["p3"])


def test_clients_may_not_send_a_session_as_order_id() -> None:
    fields = {"event_id": "e1", "user_id": "s-1", "item_id": "a", "event": "purchase"}
    assert Event.model_validate({**fields, "order_id": "web-1"}).order_id == "web-1"
    with pytest.raises(pydantic.ValidationError, match="order_id may not start with 'session:'"):
        Event.model_validate({**fields, "order_id": "session:s-1:0"})
