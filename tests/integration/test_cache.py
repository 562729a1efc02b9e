"""The near cache in front of Redis, and its invalidation across processes (real Redis)."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.cache import Cache, digest
from tests.conftest import REDIS_URL

BODY = b'{"items":[]}'


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    yield client
    await client.aclose()


def cache_for(redis: Redis, near_ttl_s: float) -> Cache:
    return Cache(redis, "test-model", list_ttl_s=60, reason_ttl_s=60, near_ttl_s=near_ttl_s)


async def test_near_entries_answer_without_redis_until_they_expire(redis: Redis) -> None:
    cache = cache_for(redis, near_ttl_s=0.3)
    await cache.set_answer("lists", "u1", "k10", BODY)
    await redis.flushdb()  # only this process's memory holds the answer now
    assert await cache.get_answer("lists", "u1", "k10") == BODY
    await asyncio.sleep(0.4)
    assert await cache.get_answer("lists", "u1", "k10") is None


async def test_an_event_in_one_process_drops_the_shopper_in_another(redis: Redis) -> None:
    other_redis = Redis.from_url(REDIS_URL)  # the second process's own connection
    writer, reader = cache_for(redis, 30), cache_for(other_redis, 30)
    follower = asyncio.create_task(reader.follow_invalidations())
    try:
        await asyncio.sleep(0.2)  # subscribed
        await writer.set_answer("lists", "u1", "k10", BODY)
        await writer.set_answer("lists", "u2", "k10", BODY)
        assert await reader.get_answer("lists", "u1", "k10") == BODY  # now near in the reader
        assert await reader.get_answer("lists", "u2", "k10") == BODY
        await writer.invalidate_user("u1")
        for _ in range(50):
            if reader.near.get(digest("u1"), "lists", "k10") is None:
                break
            await asyncio.sleep(0.02)
        assert await reader.get_answer("lists", "u1", "k10") is None
        assert await reader.get_answer("lists", "u2", "k10") == BODY  # other shoppers stay
    finally:
        follower.cancel()
        await other_redis.aclose()


async def test_near_cache_is_bounded() -> None:
    from app.cache import NearCache

    near = NearCache(ttl_s=60, max_shoppers=2)
    for user in ("a", "b", "c"):
        near.put(user, "lists", "f", BODY)
    assert near.get("a", "lists", "f") is None  # least recently used went first
    assert near.get("c", "lists", "f") == BODY
