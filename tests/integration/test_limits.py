"""Request limits against the real Redis: a client over its rate gets 429 + Retry-After, the
limit fails open when Redis is down, and an oversized body gets 413 (declared or streamed)."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from app.config import Settings
from app.main import create_app
from tests.conftest import REDIS_URL
from tests.integration.test_auth import add_key
from tests.integration.test_health import DEAD_REDIS, client_for


async def a_fresh_minute() -> None:
    """Counts are per wall-clock minute: start well inside one, so none rolls over mid-test."""
    into = time.time() % 60
    if into > 50:
        await asyncio.sleep(60 - into + 0.5)
    redis = Redis.from_url(REDIS_URL)
    async for key in redis.scan_iter(match="rr:v2:rate:*"):
        await redis.delete(key)
    await redis.aclose()


async def test_a_client_over_its_rate_gets_429_with_retry_after(settings: Settings) -> None:
    await a_fresh_minute()
    limited = settings.model_copy(update={"redis_url": REDIS_URL, "rate_limit_per_minute": 5})
    async with client_for(create_app(limited)) as client:
        answers = [await client.get("/v1/items/1") for _ in range(5)]
        assert all(a.status_code != 429 for a in answers)
        over = await client.get("/v1/recommend", params={"user_id": "u1"})
        assert over.status_code == 429
        assert over.headers["content-type"] == "application/problem+json"
        assert over.json()["type"] == "urn:reasonrec:problem:rate-limited"
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert "x-request-id" in over.headers
        assert (await client.get("/healthz")).status_code == 200  # probes are never limited


async def test_a_valid_key_has_its_own_budget_and_a_made_up_one_none(settings: Settings) -> None:
    """A storefront backend serves many shoppers from one address: its key, not its address,
    is counted. Made-up keys count against the address, or they would dodge its limit."""
    await a_fresh_minute()
    key = add_key(settings.database_url, "storefront", ["read"])
    limited = settings.model_copy(
        update={"redis_url": REDIS_URL, "rate_limit_per_minute": 3, "key_rate_limit_per_minute": 6}
    )
    async with client_for(create_app(limited)) as client:
        keyed = [
            await client.get("/v1/items/1", headers={"Authorization": f"Bearer {key}"})
            for _ in range(7)
        ]
        assert [a.status_code == 429 for a in keyed] == [False] * 6 + [True]
        assert "this API key" in keyed[-1].json()["detail"]
        made_up = [
            await client.get("/v1/items/1", headers={"Authorization": f"Bearer rr_made-up-{n}"})
            for n in range(4)
        ]
        assert [a.status_code == 429 for a in made_up] == [False] * 3 + [True]


async def test_the_rate_limit_fails_open_without_redis(settings: Settings) -> None:
    down = settings.model_copy(update={"redis_url": DEAD_REDIS, "rate_limit_per_minute": 1})
    async with client_for(create_app(down)) as client:
        answers = [await client.get("/v1/items/1") for _ in range(3)]
        assert all(a.status_code != 429 for a in answers)


async def test_an_oversized_body_gets_413(settings: Settings) -> None:
    small = settings.model_copy(update={"max_body_bytes": 1024, "rate_limit_per_minute": 0})
    events = [
        {"event_id": f"e{n}", "user_id": "u1", "item_id": "1", "event": "view"} for n in range(40)
    ]
    body = json.dumps({"events": events}).encode()
    assert len(body) > 1024
    async with client_for(create_app(small)) as client:
        declared = await client.post(
            "/v1/events", content=body, headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413
        assert declared.json()["type"] == "urn:reasonrec:problem:body-too-large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
            for start in range(0, len(body), 256):
                yield body[start : start + 256]

        streamed = await client.post(
            "/v1/events", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
