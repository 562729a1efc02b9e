"""The /v1 API against real Postgres, Redis and a model trained on two months of real orders."""

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.db.engine import libpq_url
from app.main import create_app
from app.serving.service import Service
from tests.conftest import REDIS_URL, TinyWorld
from tests.integration.test_auth import add_key
from tests.integration.test_health import DEAD_REDIS, client_for

AS_OF = datetime(2011, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def api_settings(tiny_world: TinyWorld) -> Settings:
    return Settings(
        env="test", database_url=tiny_world.database_url, redis_url=REDIS_URL,
        models_dir=tiny_world.models_dir, as_of=AS_OF, reason_writer="template",
    )  # fmt: skip


@pytest.fixture(scope="module")
def writer_key(tiny_world: TinyWorld) -> str:
    return add_key(tiny_world.database_url, "storefront", ["events:write"])


@pytest.fixture
async def client(api_settings: Settings, writer_key: str) -> AsyncIterator[httpx.AsyncClient]:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()  # db 15 belongs to the tests
    await redis.aclose()
    async with client_for(create_app(api_settings)) as client:
        client.headers["Authorization"] = f"Bearer {writer_key}"  # a storefront's backend
        yield client


def shoppers_by_baskets(world: TinyWorld, n: int) -> list[str]:
    with psycopg.connect(libpq_url(world.database_url)) as conn:
        rows = conn.execute(
            "SELECT u.external_id FROM interaction i JOIN app_user u ON u.id = i.user_id"
            " WHERE i.event_type = 'purchase' GROUP BY u.external_id"
            " ORDER BY count(DISTINCT i.order_id) DESC, u.external_id LIMIT %s",
            (n,),
        ).fetchall()
    return [row[0] for row in rows]


def purchased_ids(world: TinyWorld, user: str) -> set[str]:
    """The shop's ids of the items the shopper bought."""
    with psycopg.connect(libpq_url(world.database_url)) as conn:
        rows = conn.execute(
            "SELECT DISTINCT it.sku FROM interaction i JOIN app_user u ON u.id = i.user_id"
            " JOIN item it ON it.id = i.item_id"
            " WHERE u.external_id = %s AND i.event_type = 'purchase'",
            (user,),
        ).fetchall()
    return {row[0] for row in rows}


async def test_recommend_for_a_known_shopper(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    user = shoppers_by_baskets(tiny_world, 1)[0]
    response = await client.get("/v1/recommend", params={"user_id": user, "k": 7})
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "history"
    assert body["user_id"] == user
    assert [item["rank"] for item in body["items"]] == list(range(1, 8))
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert {"item_id", "title", "price", "theme", "score", "rank"} <= set(body["items"][0])
    assert "sku" not in body["items"][0]  # one id: the shop's, as item_id
    assert body["model_versions"]["ranker"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert response.headers["x-request-id"] == body["request_id"]


async def test_filters(client: httpx.AsyncClient, tiny_world: TinyWorld) -> None:
    user = shoppers_by_baskets(tiny_world, 1)[0]
    bought = purchased_ids(tiny_world, user)
    plain = (await client.get("/v1/recommend", params={"user_id": user, "k": 20})).json()
    assert {i["item_id"] for i in plain["items"]} & bought, "this shop's shoppers reorder"

    fresh = await client.get(
        "/v1/recommend", params={"user_id": user, "k": 20, "exclude_purchased": True}
    )
    assert not {i["item_id"] for i in fresh.json()["items"]} & bought

    theme = plain["items"][0]["theme"]
    themed = await client.get("/v1/recommend", params={"user_id": user, "theme": theme.upper()})
    assert themed.json()["items"]
    assert {i["theme"] for i in themed.json()["items"]} == {theme}

    priced = await client.get(
        "/v1/recommend", params={"user_id": user, "min_price": 1, "max_price": 3, "k": 30}
    )
    assert all(1 <= i["price"] <= 3 for i in priced.json()["items"])
    # Like a theme no item has, a price range no item is in matches nothing: not an error.
    empty = await client.get(
        "/v1/recommend", params={"user_id": user, "min_price": 3, "max_price": 1}
    )
    assert empty.status_code == 200
    assert empty.json()["items"] == []

    dropped = [plain["items"][0]["item_id"], plain["items"][1]["item_id"]]
    excluded = await client.get(
        "/v1/recommend", params={"user_id": user, "k": 20, "exclude": dropped}
    )
    assert not {i["item_id"] for i in excluded.json()["items"]} & set(dropped)


async def test_unknown_shopper_gets_popular_in_country(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/recommend", json={"user_id": "nobody-" + uuid.uuid4().hex[:8], "country": "France"}
    )
    assert response.status_code == 200
    assert response.json()["source"] == "popular"
    assert len(response.json()["items"]) == 10


async def test_anonymous_session_is_served_from_its_items(client: httpx.AsyncClient) -> None:
    popular = (await client.post("/v1/recommend", json={})).json()
    seed = popular["items"][0]["item_id"]
    response = await client.post("/v1/recommend", json={"item_ids": [seed], "k": 10})
    body = response.json()
    assert body["source"] == "session"
    assert body["user_id"] is None
    assert seed not in {i["item_id"] for i in body["items"]}


async def test_items_and_similar(client: httpx.AsyncClient) -> None:
    popular = (await client.post("/v1/recommend", json={"k": 1})).json()["items"][0]
    assert isinstance(popular["item_id"], str)
    item = await client.get(f"/v1/items/{popular['item_id']}")
    assert item.status_code == 200
    assert item.json() == {
        k: popular[k] for k in ("item_id", "title", "price", "price_text", "theme")
    }
    similar = await client.get(f"/v1/items/{popular['item_id']}/similar", params={"k": 5})
    body = similar.json()
    assert len(body["similar"]) == 5
    assert popular["item_id"] not in {s["item_id"] for s in body["similar"]}
    scores = [s["score"] for s in body["similar"]]
    assert scores == sorted(scores, reverse=True)
    missing = await client.get("/v1/items/999999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "item '999999999' is not in the catalog"


@pytest.mark.parametrize(
    "path",
    ["/v1/items/sku-12_3%2Fx", "/v1/items/sku-12_3/x", "/v1/items/sku-12_3%2Fx/similar",
     "/v1/items/sku-12_3/x/similar"],
)  # fmt: skip
async def test_an_item_id_holding_a_slash_reaches_the_service_whole(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["detail"] == "item 'sku-12_3/x' is not in the catalog"


async def test_explain_gives_evidence_and_a_reason(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    user = shoppers_by_baskets(tiny_world, 1)[0]
    top = (
        await client.get(
            "/v1/recommend", params={"user_id": user, "exclude_purchased": True, "k": 1}
        )
    ).json()["items"][0]
    response = await client.get("/v1/explain", params={"user_id": user, "item_id": top["item_id"]})
    assert response.status_code == 200
    body = response.json()
    assert body["reason"]
    assert body["reason_writer"] == "template"
    assert body["cached"] is False
    kinds = [fact["kind"] for fact in body["evidence"]]
    assert "anchor" in kinds
    bought = purchased_ids(tiny_world, user)
    assert all(f["data"]["item_id"] in bought for f in body["evidence"] if f["kind"] == "anchor")
    again = await client.get("/v1/explain", params={"user_id": user, "item_id": top["item_id"]})
    assert again.json()["cached"] is True
    assert again.json()["reason"] == body["reason"]


async def test_anchors_are_the_items_that_drive_the_score(
    client: httpx.AsyncClient, tiny_world: TinyWorld, api_settings: Settings
) -> None:
    """The first anchor is the history item whose removal lowers the score the most, by the
    reported amount: checked by removing every history item in turn."""
    user = shoppers_by_baskets(tiny_world, 1)[0]
    top = (
        await client.get(
            "/v1/recommend", params={"user_id": user, "exclude_purchased": True, "k": 1}
        )
    ).json()["items"][0]
    body = (
        await client.get("/v1/explain", params={"user_id": user, "item_id": top["item_id"]})
    ).json()
    anchors = [f["data"] for f in body["evidence"] if f["kind"] == "anchor"]
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        service: Service = app.state.service
        async with service.engine.connect() as conn:
            from app.serving.shoppers import load_shopper

            found = await load_shopper(conn, user, service.catalog, service.reading())
        assert found is not None
        shopper, history = found
        target = service.catalog.find(top["item_id"])
        assert target is not None
        now = int(AS_OF.timestamp())
        retriever = service.recommender.retriever
        base = retriever.score_history(
            history.items, history.item_times, history.basket_times, shopper.country, now
        )[target.index]
        drops = {}
        for index in np.unique(history.items[-50:]):
            keep = history.items != index
            without = retriever.score_history(
                history.items[keep], history.item_times[keep], history.basket_times,
                shopper.country, now,
            )  # fmt: skip
            drops[int(index)] = base - without[target.index]
    strongest = max(drops, key=lambda i: drops[i])
    assert service.catalog.at(strongest).sku == anchors[0]["item_id"]
    assert anchors[0]["contribution"] == pytest.approx(drops[strongest], abs=1e-3)


async def test_reasons_are_never_shared_between_shoppers(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    first, second = shoppers_by_baskets(tiny_world, 2)
    item = (
        await client.get(
            "/v1/recommend", params={"user_id": first, "exclude_purchased": True, "k": 1}
        )
    ).json()["items"][0]["item_id"]
    one = (await client.get("/v1/explain", params={"user_id": first, "item_id": item})).json()
    two = (await client.get("/v1/explain", params={"user_id": second, "item_id": item})).json()
    assert two["cached"] is False  # the first shopper's cached reason was not reused
    for body, user in ((one, first), (two, second)):
        bought = purchased_ids(tiny_world, user)
        for fact in body["evidence"]:
            if fact["kind"] == "anchor":
                assert fact["data"]["item_id"] in bought
                assert fact["data"]["title"] in body["reason"] or fact is not body["evidence"][0]


async def test_events_are_idempotent_and_change_the_next_list(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    user = shoppers_by_baskets(tiny_world, 3)[2]
    params: dict[str, str | int | bool] = {"user_id": user, "exclude_purchased": True, "k": 5}
    first = (await client.get("/v1/recommend", params=params)).json()
    assert first["cached"] is False
    assert (await client.get("/v1/recommend", params=params)).json()["cached"] is True
    bought = first["items"][0]["item_id"]
    tag = uuid.uuid4().hex[:8]
    batch = {
        "events": [
            {"event_id": f"{tag}-1", "user_id": user, "item_id": bought, "event": "purchase",
             "quantity": 2, "order_id": f"web-{tag}", "occurred_at": "2011-01-31T10:00:00Z"},
            {"event_id": f"{tag}-2", "user_id": user, "item_id": bought, "event": "view"},
        ]
    }  # fmt: skip
    stored = await client.post("/v1/events", json=batch)
    assert stored.status_code == 200
    assert stored.json() == {"received": 2, "stored": 2, "duplicates": 0}
    retried = await client.post("/v1/events", json=batch)
    assert retried.json() == {"received": 2, "stored": 0, "duplicates": 2}
    with psycopg.connect(libpq_url(tiny_world.database_url)) as conn:
        count = conn.execute(
            "SELECT count(*) FROM interaction WHERE event_id LIKE %s", (f"{tag}-%",)
        ).fetchone()
    assert count == (2,)
    after = (await client.get("/v1/recommend", params=params)).json()
    assert after["cached"] is False  # the event dropped the shopper's cached lists
    assert bought not in {i["item_id"] for i in after["items"]}


async def test_an_event_id_reused_for_another_event_is_a_conflict(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    tag = uuid.uuid4().hex[:8]
    known = (await client.post("/v1/recommend", json={"k": 2})).json()["items"]
    first, other = known[0]["item_id"], known[1]["item_id"]
    event = {"event_id": f"{tag}-1", "user_id": f"u-{tag}", "item_id": first, "event": "click"}
    assert (await client.post("/v1/events", json={"events": [event]})).status_code == 200
    # A retry without a time matches (the server stamped the first one), so it is skipped.
    retried = await client.post("/v1/events", json={"events": [event]})
    assert retried.json() == {"received": 1, "stored": 0, "duplicates": 1}

    changed = [
        {**event, "item_id": other},
        {**event, "event": "purchase"},
        {**event, "user_id": f"v-{tag}"},
        {**event, "quantity": 3},
        {**event, "occurred_at": "2011-01-31T10:00:00Z"},
    ]
    fresh = {"event_id": f"{tag}-2", "user_id": f"u-{tag}", "item_id": first, "event": "view"}
    for reused in changed:
        response = await client.post("/v1/events", json={"events": [fresh, reused]})
        assert response.status_code == 409, reused
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["conflicting_event_ids"] == [f"{tag}-1"]
    # The same id twice in one batch, for two different events.
    twice = [{**fresh, "event_id": f"{tag}-3"}, {**fresh, "event_id": f"{tag}-3", "quantity": 2}]
    response = await client.post("/v1/events", json={"events": twice})
    assert response.json()["conflicting_event_ids"] == [f"{tag}-3"]
    with psycopg.connect(libpq_url(tiny_world.database_url)) as conn:
        stored = conn.execute(
            "SELECT i.event_id, it.sku, i.event_type, i.quantity FROM interaction i"
            " JOIN item it ON it.id = i.item_id WHERE i.event_id LIKE %s",
            (f"{tag}-%",),
        ).fetchall()
    assert stored == [(f"{tag}-1", first, "click", 1)]  # nothing of a rejected batch was kept


async def test_add_to_cart_counts_as_the_current_basket(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    user = "cart-" + uuid.uuid4().hex[:8]
    popular = (await client.get("/v1/recommend", params={"user_id": user})).json()
    assert popular["source"] == "popular"
    added = popular["items"][3]["item_id"]
    event = {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": added,
             "event": "add_to_cart", "country": "France"}  # fmt: skip
    assert (await client.post("/v1/events", json={"events": [event]})).status_code == 200
    after = (await client.get("/v1/recommend", params={"user_id": user})).json()
    assert after["source"] == "session"
    assert added not in {i["item_id"] for i in after["items"]}
    assert after["items"] != popular["items"]


async def test_events_with_unknown_items_store_nothing(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    tag = uuid.uuid4().hex[:8]
    known = (await client.post("/v1/recommend", json={"k": 1})).json()["items"][0]["item_id"]
    batch = {
        "events": [
            {"event_id": f"{tag}-ok", "user_id": "u1", "item_id": known, "event": "click"},
            {
                "event_id": f"{tag}-bad",
                "user_id": "u1",
                "item_id": "no such/item",
                "event": "click",
            },
        ]
    }
    response = await client.post("/v1/events", json=batch)
    assert response.status_code == 422
    assert response.json()["unknown_item_ids"] == ["no such/item"]
    assert response.json()["detail"] == "unknown item ids: 'no such/item'"
    with psycopg.connect(libpq_url(tiny_world.database_url)) as conn:
        count = conn.execute(
            "SELECT count(*) FROM interaction WHERE event_id LIKE %s", (f"{tag}-%",)
        ).fetchone()
    assert count == (0,)


@pytest.mark.parametrize(
    ("method", "url", "payload"),
    [
        ("GET", "/v1/recommend?user_id=1&k=0", None),
        ("GET", "/v1/recommend?user_id=1&k=101", None),
        ("GET", "/v1/recommend?user_id=1&surprise=1", None),
        ("GET", "/v1/recommend?user_id=1&exclude=", None),
        ("GET", "/v1/recommend?user_id=a%0Ab", None),  # a line break
        ("GET", "/v1/recommend?user_id=1&min_price=-1", None),
        ("GET", "/v1/recommend?user_id=1&exclude=a%20%20b", None),
        ("GET", "/v1/recommend?user_id=1&exclude=%20a", None),
        ("POST", "/v1/recommend", {"k": 5, "surprise": True}),
        ("POST", "/v1/recommend", {"with_reasons": 1}),
        ("POST", "/v1/recommend", {"min_price": "5"}),
        ("POST", "/v1/recommend", {"item_ids": [528]}),  # a number is not the shop's id
        ("POST", "/v1/recommend", {"item_ids": ["a\tb"]}),
        ("GET", "/v1/explain?user_id=1", None),
        ("GET", "/v1/items/" + "x" * 129, None),
        ("GET", "/v1/items/abc/similar?k=0", None),
        ("POST", "/v1/events", {"events": []}),
        ("POST", "/v1/events", {"events": [{"event_id": "x", "user_id": "u", "item_id": 1,
                                            "event": "view"}]}),
        ("POST", "/v1/events", {"events": [{"event_id": "x", "user_id": "u", "item_id": "1",
                                            "event": "teleport"}]}),
        ("POST", "/v1/events", {"events": [{"event_id": "x", "user_id": "u", "item_id": "1",
                                            "event": "view", "occurred_at": "2011-01-01T10:00"}]}),
        ("POST", "/v1/events", {"events": [{"event_id": "x", "user_id": "u", "item_id": "1",
                                            "event": "view", "occurred_at": 0}]}),
        ("POST", "/v1/events", {"events": [{"event_id": "x", "user_id": "u", "item_id": "1",
                                            "event": "view", "price": "1.5"}]}),
    ],
)  # fmt: skip
async def test_validation_errors_are_problems(
    client: httpx.AsyncClient, method: str, url: str, payload: object
) -> None:
    response = await client.request(method, url, json=payload)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("method", "url", "content", "content_type", "status"),
    [
        ("GET", "/v1/recommend?user_id=" + "9" * 10_000, None, None, 422),  # very long id
        ("GET", "/v1/recommend?user_id=%E2%80%AEabc%E2%80%8B", None, None, 422),  # RTL, zero-width
        ("GET", "/v1/recommend?user_id=%F0%9F%9B%92", None, None, 422),  # an emoji
        ("GET", "/v1/recommend?user_id=a%00b", None, None, 422),  # a NUL byte
        # Well-formed ids that name nothing: bound as parameters, never spliced into SQL.
        ("GET", "/v1/explain?user_id=1&item_id=1%20OR%201%3D1", None, None, 404),
        ("GET", "/v1/shoppers/x'%3B--/history", None, None, 404),
        ("GET", "/v1/items/%E2%80%AEabc", None, None, 422),  # RTL override
        ("POST", "/v1/recommend", b'{"k": 5,', "application/json", 400),  # malformed JSON
        ("POST", "/v1/recommend", b"\xff\xfe{}", "application/json", 400),  # not UTF-8
        ("POST", "/v1/recommend", b'{"k": 5}', "text/plain", 422),  # wrong content type
        ("POST", "/v1/recommend", b"<k>5</k>", "application/xml", 422),
        ("POST", "/v1/events", b'{"events": [' + b"[" * 5_000 + b"]", "application/json", 400),
    ],
)  # fmt: skip
async def test_hostile_inputs_get_problems_not_errors(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    content: bytes | None,
    content_type: str | None,
    status: int,
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.request(method, url, content=content, headers=headers)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert "Traceback" not in response.text
    assert len(response.content) < 5_000  # the input is never echoed back


async def test_an_id_that_looks_like_sql_is_just_an_unknown_shopper(
    client: httpx.AsyncClient,
) -> None:
    # Printable ASCII is a valid shop id; ids are bound as query parameters, never spliced.
    user = "'; DROP TABLE item;--"
    response = await client.get("/v1/recommend", params={"user_id": user})
    assert response.status_code == 200
    assert response.json()["source"] == "popular"
    assert response.json()["user_id"] == user


async def test_redis_down_fails_open(api_settings: Settings, tiny_world: TinyWorld) -> None:
    user = shoppers_by_baskets(tiny_world, 1)[0]
    app = create_app(api_settings.model_copy(update={"redis_url": DEAD_REDIS}))
    async with client_for(app) as client:
        before = (await client.get("/metrics")).text
        listing = await client.get("/v1/recommend", params={"user_id": user})
        assert listing.status_code == 200
        item = listing.json()["items"][0]["item_id"]
        explained = await client.get("/v1/explain", params={"user_id": user, "item_id": item})
        assert explained.status_code == 200
        assert explained.json()["reason"]
        after = (await client.get("/metrics")).text
    assert errors_counted(after) > errors_counted(before)


def errors_counted(metrics: str) -> float:
    match = re.search(r"^reasonrec_cache_errors_total (\S+)$", metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_metrics_expose_route_latency(client: httpx.AsyncClient) -> None:
    await client.post("/v1/recommend", json={"k": 3})
    text = (await client.get("/metrics")).text
    assert 'reasonrec_request_seconds_bucket{le="0.05",method="POST",route="/v1/recommend"' in text


async def test_concurrent_identical_misses_compute_once(
    api_settings: Settings, tiny_world: TinyWorld
) -> None:
    user = shoppers_by_baskets(tiny_world, 4)[3]
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()
    app = create_app(api_settings)
    async with client_for(app) as client:
        service: Service = app.state.service
        computed = 0
        original = service._recommend

        async def counting(*args: object, **kwargs: object) -> object:
            nonlocal computed
            computed += 1
            return await original(*args, **kwargs)  # type: ignore[arg-type]

        service._recommend = counting  # type: ignore[method-assign, assignment]
        params: dict[str, str | int] = {"user_id": user, "k": 4}
        responses = await asyncio.gather(
            *(client.get("/v1/recommend", params=params) for _ in range(8))
        )
    bodies = [r.json() for r in responses]
    assert computed == 1
    assert len({b["request_id"] for b in bodies}) == 8
    assert all(b["items"] == bodies[0]["items"] for b in bodies)


async def test_without_a_model_the_api_is_not_ready(api_settings: Settings, tmp_path: Path) -> None:
    app = create_app(api_settings.model_copy(update={"models_dir": tmp_path}))
    async with client_for(app) as client:
        ready = await client.get("/readyz")
        listing = await client.get("/v1/recommend", params={"user_id": "17850"})
        alive = await client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["model"] == "not_loaded"
    assert listing.status_code == 503
    assert listing.headers["content-type"] == "application/problem+json"
    assert "retry-after" in listing.headers
    assert alive.status_code == 200


def test_make_run_skips_features_and_training_that_exist(tiny_world: TinyWorld) -> None:
    """The second `make run` must not redo work: both steps say they skip."""
    env = {
        **os.environ, "RECS_DATABASE_URL": tiny_world.database_url,
        "RECS_MODELS_DIR": str(tiny_world.models_dir),
    }  # fmt: skip
    for command in (["features", "--if-missing"], ["train", "--if-missing"]):
        done = subprocess.run(
            [sys.executable, "-m", "app", *command], env=env, capture_output=True, text=True,
            check=False, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "skipping" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"k": 5', "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b"k=5", "application/json"),
    ],
)
async def test_malformed_json_is_a_400_problem(
    client: httpx.AsyncClient, body: bytes, content_type: str
) -> None:
    response = await client.post(
        "/v1/recommend", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:reasonrec:problem:malformed-body"


async def test_warm_fills_the_cache_for_the_most_active_shoppers(
    client: httpx.AsyncClient, api_settings: Settings
) -> None:
    env = {
        **os.environ, "RECS_DATABASE_URL": api_settings.database_url, "RECS_REDIS_URL": REDIS_URL,
        "RECS_MODELS_DIR": str(api_settings.models_dir), "RECS_REASON_WRITER": "template",
        "RECS_AS_OF": str(api_settings.as_of),
    }  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app", "warm", "--shoppers", "3", "--k", "4"],
        env=env, capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert "warmed 3 shoppers x 4" in done.stdout + done.stderr  # the console writes to stderr
    redis = Redis.from_url(REDIS_URL)
    reasons = [key async for key in redis.scan_iter(match="rr:v2:*:template:reason:*")]
    await redis.aclose()
    assert len(reasons) == 3 * 4
    with psycopg.connect(libpq_url(api_settings.database_url)) as conn:
        top = conn.execute(
            "SELECT u.external_id FROM user_feature f JOIN app_user u ON u.id = f.user_id"
            " ORDER BY f.baskets DESC, u.external_id LIMIT 1"
        ).fetchone()
    assert top is not None
    params = {"user_id": top[0], "k": 4, "with_reasons": "true"}
    answer = (await client.get("/v1/recommend", params=params)).json()
    assert answer["cached"] is True  # the list warm computed, with its reasons
    assert all(item["reason"] for item in answer["items"])
