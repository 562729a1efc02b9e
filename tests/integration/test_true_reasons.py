"""Served reasons end to end on the tiny world: hostile titles and countries never reach a
shopper (template and LM writers, and the demo's cart), anonymous sessions get reasons from
their items, and a late LM reason replaces the template that stood in for it."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import psycopg
import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.db.engine import libpq_url
from app.main import create_app
from app.reasons.writers import Generation, LMWriter
from app.serving.service import Service
from bench.checker import check_reason
from tests.conftest import REDIS_URL, TinyWorld
from tests.integration.test_api import AS_OF, shoppers_by_baskets
from tests.integration.test_health import client_for

HOSTILE_TITLE = "Call 07700 900123 or visit https://evil.example.com/deal <b>BAG</b>\u202e"
HOSTILE_COUNTRY = "<img src=x onerror=alert(1)>"
FRAGMENTS = ("07700", "http", "evil", "<", ">", "\u202e", "onerror", "alert")


class Scripted:
    """A language model that answers from a script, after `delay_s`."""

    name = "scripted"

    def __init__(self, text: str, delay_s: float = 0.0) -> None:
        self.text, self.delay_s = text, delay_s

    async def generate(self, prompts: list[str]) -> list[Generation]:
        await asyncio.sleep(self.delay_s)
        return [Generation(self.text, finished=True) for _ in prompts]


def settings_for(world: TinyWorld) -> Settings:
    return Settings(
        env="test", database_url=world.database_url, redis_url=REDIS_URL,
        models_dir=world.models_dir, as_of=AS_OF, reason_writer="template", demo=True,
        currency="GBP",
    )  # fmt: skip


async def flushed_client(world: TinyWorld) -> AsyncIterator[httpx.AsyncClient]:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()
    async with client_for(create_app(settings_for(world))) as client:
        yield client


# First in the module: the hostile world below rewrites a shopper and an item of the same
# tiny world when a later test first asks for it.
async def test_every_served_claim_is_true_by_the_independent_checker(
    tiny_world: TinyWorld,
) -> None:
    """Template reasons of the 12 most active shoppers, their own items and new ones, one with
    a cart, each claim recomputed from the raw rows by bench/checker.py."""
    users = shoppers_by_baskets(tiny_world, 12)
    checked: list[tuple[str, dict[str, Any]]] = []
    async for client in flushed_client(tiny_world):
        top = await client.get("/v1/recommend", params={"user_id": users[-1], "k": 3})
        for item in top.json()["items"]:
            await client.post("/demo/cart", json={"user_id": users[0], "item_id": item["item_id"]})
        for user in users:
            for exclude in ("false", "true"):
                params: dict[str, str | int] = {
                    "user_id": user,
                    "k": 10,
                    "with_reasons": "true",
                    "exclude_purchased": exclude,
                }
                body = (await client.get("/v1/recommend", params=params)).json()
                checked += [(user, item) for item in body["items"]]
    assert len(checked) == 2 * 10 * len(users)
    with psycopg.connect(libpq_url(tiny_world.database_url)) as conn:
        # The API names items by the shop's id; the checker reads rows by the database's.
        ids: dict[str, int] = dict(conn.execute("SELECT sku, id FROM item").fetchall())
        verdicts = [
            (claim, reason["reason"])
            for user, reason in checked
            for claim in check_reason(
                conn, user, ids[reason["item_id"]], reason["reason"], AS_OF, "£"
            )
        ]
    wrong = [(c.kind, c.verdict, c.detail, text) for c, text in verdicts if c.verdict != "true"]
    assert not wrong, wrong
    kinds = {claim.kind for claim, _ in verdicts}
    assert {"anchor_orders", "days_since", "price", "usual_price", "popularity_rank"} <= kinds


@pytest.fixture(scope="module")
def hostile_world(tiny_world: TinyWorld) -> tuple[TinyWorld, str, str]:
    """The tiny world with the most active shopper's country and their most bought item's
    title made hostile; that shopper and item."""
    user = shoppers_by_baskets(tiny_world, 1)[0]
    with psycopg.connect(libpq_url(tiny_world.database_url), autocommit=True) as conn:
        conn.execute(
            "UPDATE app_user SET country = %s WHERE external_id = %s", (HOSTILE_COUNTRY, user)
        )
        row = conn.execute(
            "SELECT i.item_id, it.sku FROM interaction i JOIN app_user u ON u.id = i.user_id"
            " JOIN item it ON it.id = i.item_id"
            " WHERE u.external_id = %s AND i.event_type = 'purchase'"
            " GROUP BY i.item_id, it.sku ORDER BY count(*) DESC, i.item_id LIMIT 1",
            (user,),
        ).fetchone()
        assert row is not None
        conn.execute(
            "UPDATE item SET title = %s, display_title = %s WHERE id = %s",
            (HOSTILE_TITLE, HOSTILE_TITLE, row[0]),
        )
    return tiny_world, user, row[1]


@pytest.fixture
async def client(hostile_world: tuple[TinyWorld, str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in flushed_client(hostile_world[0]):
        yield client


def service_of(client: httpx.AsyncClient) -> Service:
    service: Service = client._transport.app.state.service  # type: ignore[attr-defined]
    return service


def shown_text(body: dict[str, object]) -> str:
    """Every string a page could show from a list: reasons and evidence texts."""
    items = body["items"]
    assert isinstance(items, list)
    texts = [str(item["reason"]) for item in items]
    texts += [fact["text"] for item in items for fact in item["evidence"] or []]
    return " ".join(texts)


async def test_hostile_titles_and_countries_never_reach_a_shopper(
    client: httpx.AsyncClient, hostile_world: tuple[TinyWorld, str, str]
) -> None:
    _, user, hostile_item = hostile_world
    service = service_of(client)
    # The demo's cart puts the hostile item in the cart of a shopper who never bought it.
    newcomer = "hostile-newcomer"
    cart = await client.post("/demo/cart", json={"user_id": newcomer, "item_id": hostile_item})
    assert cart.status_code in (200, 202), cart.text
    lm = LMWriter(Scripted("Chosen to go with the [ITEM1] in your cart."), service.vocabulary, 5.0)
    for writer in (service.writer, lm):
        service.writer = writer
        await service.cache.redis.flushdb()
        for who in (user, newcomer):
            for exclude in ("false", "true"):
                body = (
                    await client.get(
                        "/v1/recommend",
                        params={"user_id": who, "k": 10, "with_reasons": "true",
                                "exclude_purchased": exclude},
                    )
                ).json()  # fmt: skip
                text = shown_text(body)
                assert not any(bad in text for bad in FRAGMENTS), text
                facts = [f for item in body["items"] for f in item["evidence"]]
                popular = [f for f in facts if f["kind"] == "popularity"]
                # A country that sanitises to nothing is unknown: popularity over everyone.
                assert all(f["data"]["scope"] == "all" for f in popular), popular
    named = [f for f in facts if f.get("data", {}).get("item_id") == hostile_item]
    assert all(f["data"]["title"] == "Call or visit BAG" for f in named if "title" in f["data"])


async def test_an_anonymous_session_gets_reasons_from_its_items(
    client: httpx.AsyncClient, hostile_world: tuple[TinyWorld, str, str]
) -> None:
    world, _, _ = hostile_world
    anchors, reasons = [], []
    for user in shoppers_by_baskets(world, 5):
        with psycopg.connect(libpq_url(world.database_url)) as conn:
            rows = conn.execute(
                "SELECT it.sku FROM interaction i JOIN app_user u ON u.id = i.user_id"
                " JOIN item it ON it.id = i.item_id"
                " WHERE u.external_id = %s GROUP BY i.item_id, it.sku"
                " ORDER BY count(*) DESC, i.item_id LIMIT 3",
                (user,),
            )
            items = [item_id for (item_id,) in rows]
        session = {"item_ids": items, "k": 5, "with_reasons": True}
        body = (await client.post("/v1/recommend", json=session)).json()
        assert body["source"] == "session"
        assert all(item["reason"] and item["reason_writer"] == "template" for item in body["items"])
        kinds = {f["kind"] for item in body["items"] for f in item["evidence"]}
        assert kinds <= {"anchor", "co_purchase", "shared_theme", "popularity"}  # nothing personal
        anchors += [
            f["data"] for i in body["items"] for f in i["evidence"] if f["kind"] == "anchor"
        ]
        reasons += [item["reason"] for item in body["items"]]
    # Anchors only where a session item raises the score (the tiny model may find none).
    assert all(a["in_session"] and a["orders"] == 0 and not a["in_cart"] for a in anchors)
    assert not any("you bought" in reason.lower() for reason in reasons)
    none = (await client.post("/v1/recommend", json={"k": 3, "with_reasons": True})).json()
    assert all(item["reason"] for item in none["items"])  # popular items: never a null reason


async def test_a_late_model_reason_replaces_its_stand_in(
    client: httpx.AsyncClient, hostile_world: tuple[TinyWorld, str, str]
) -> None:
    _, user, _ = hostile_world
    service = service_of(client)
    text = "Recommended for you, with care."
    service.writer = LMWriter(Scripted(text, delay_s=0.5), service.vocabulary, 0.1, late_s=5)
    top: dict[str, Any] = (
        await client.get("/v1/recommend", params={"user_id": user, "k": 1})
    ).json()["items"][0]
    params: dict[str, str | int] = {"user_id": user, "item_id": top["item_id"]}
    first = (await client.get("/v1/explain", params=params)).json()
    assert first["reason_writer"] == "template"  # the model was late: its stand-in is served
    await asyncio.sleep(1.0)  # the late generation has landed
    again = (await client.get("/v1/explain", params=params)).json()
    assert (again["reason"], again["reason_writer"]) == (text, "scripted")
    # The list and the explanation agree: both serve the model's reason now.
    listed: dict[str, str | int] = {"user_id": user, "k": 1, "with_reasons": "true"}
    item = (await client.get("/v1/recommend", params=listed)).json()["items"][0]
    assert (item["reason"], item["reason_writer"]) == (text, "scripted")
