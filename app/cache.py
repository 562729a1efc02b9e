"""Redis cache for recommendation lists and reasons.

- Keys are versioned (model version) and always include the shopper: a reason can mention a
  shopper's own purchases, so one shopper's entry is never served to another.
- Fail-open: when Redis is down or slow, the service answers without it; each failure is logged
  and counted (reasonrec_cache_errors_total).
- Single-flight: concurrent identical misses in this process compute once.
"""

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.metrics import CACHE, CACHE_ERRORS

logger = logging.getLogger(__name__)
T = TypeVar("T")
PREFIX = "rr:v1"


def served_from_cache(body: bytes, request_id: str) -> bytes:
    """A stored response body (a JSON object without request_id and cached) as served now."""
    return f'{{"request_id":"{request_id}","cached":true,'.encode() + body[1:]


def digest(value: Any) -> str:
    """A short stable hash of a JSON-able value (request parameters, evidence)."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:24]


class Cache:
    def __init__(self, redis: Redis, model_version: str, list_ttl_s: int, reason_ttl_s: int):
        self.redis = redis
        self.model_version = model_version
        self.list_ttl_s = list_ttl_s
        self.reason_ttl_s = reason_ttl_s
        self._flights: dict[str, asyncio.Future[Any]] = {}

    def _answers_key(self, kind: str, user: str) -> str:
        # One hash per shopper and kind holds their cached answers, so an event drops them all
        # in one DEL.
        return f"{PREFIX}:{self.model_version}:{kind}:{digest(user)}"

    def _reason_key(self, user: str, item_id: int, writer: str, evidence: str) -> str:
        return f"{PREFIX}:{self.model_version}:{writer}:reason:{digest(user)}:{item_id}:{evidence}"

    async def _guard(self, call: Awaitable[T]) -> T | None:
        try:
            return await call
        except (RedisError, OSError, TimeoutError) as error:
            CACHE_ERRORS.inc()
            logger.warning("redis unavailable, answering without the cache: %s", error)
            return None

    def _ttl(self, kind: str) -> int:
        return self.list_ttl_s if kind == "lists" else self.reason_ttl_s

    async def get_answer(self, kind: str, user: str, field: str) -> bytes | None:
        """A stored response body (JSON bytes); kind is "lists" or "explain"."""
        if self._ttl(kind) <= 0:
            return None
        raw = await self._guard(self.redis.hget(self._answers_key(kind, user), field))
        CACHE.labels(kind, "hit" if raw else "miss").inc()
        return raw if isinstance(raw, bytes) else None

    async def set_answer(self, kind: str, user: str, field: str, body: bytes) -> None:
        if self._ttl(kind) <= 0:
            return
        key = self._answers_key(kind, user)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, field, body)
        pipe.expire(key, self._ttl(kind))
        await self._guard(pipe.execute())

    async def invalidate_user(self, user: str) -> None:
        """Drop the shopper's cached lists and explanations (their history changed)."""
        keys = [self._answers_key(kind, user) for kind in ("lists", "explain")]
        await self._guard(self.redis.delete(*keys))

    async def get_reason(self, user: str, item_id: int, writer: str, evidence: str) -> str | None:
        if self.reason_ttl_s <= 0:
            return None
        raw = await self._guard(self.redis.get(self._reason_key(user, item_id, writer, evidence)))
        CACHE.labels("reason", "hit" if raw else "miss").inc()
        return raw.decode() if isinstance(raw, bytes) else None

    async def set_reason(
        self, user: str, item_id: int, writer: str, evidence: str, reason: str
    ) -> None:
        if self.reason_ttl_s <= 0:
            return
        key = self._reason_key(user, item_id, writer, evidence)
        await self._guard(self.redis.set(key, reason, ex=self.reason_ttl_s))

    async def single_flight(self, key: str, compute: Callable[[], Awaitable[T]]) -> T:
        """Run `compute` once for concurrent callers with the same key; all get its result."""
        flight = self._flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        try:
            result = await compute()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: followers may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._flights[key]
