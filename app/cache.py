"""Redis cache for recommendation lists and reasons.

- Keys are versioned (model version) and always include the shopper: a reason can mention a
  shopper's own purchases, so one shopper's entry is never served to another.
- Fail-open: when Redis is down or slow, the service answers without it; each failure is logged
  and counted (reasonrec_cache_errors_total), and for a second after one Redis is not even
  tried (counted as skipped), so an outage costs requests no time (FailOpen).
- Single-flight: concurrent identical misses in this process compute once.
- Near cache: answers are also kept in this process for a few seconds, in front of Redis. An
  event drops the shopper's entries here at once and, through a Redis channel, in every other
  process; when that channel is down, the short TTL bounds how stale an answer can get.
"""

import asyncio
import hashlib
import inspect
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.metrics import CACHE, CACHE_ERRORS
from app.reasons.writers import Written

logger = logging.getLogger(__name__)
T = TypeVar("T")
PREFIX = "rr:v2"  # bumped whenever what is stored changes shape
INVALIDATIONS = "invalidate"  # channel: a shopper's digest, whose answers changed
REDIS_RETRY_S = 1.0  # once Redis is taken for down, it is skipped this long, then tried again
REDIS_DOWN_AFTER = 3  # failed calls in a row (no success between) that mean Redis is down
RELOADS = "reload"  # channel: a ranker version every process should switch to
# Key: the version last reloaded to, for processes that missed the message.
ACTIVE_RANKER = f"{PREFIX}:ranker"


def served_from_cache(body: bytes, request_id: str) -> bytes:
    """A stored response body (a JSON object without request_id and cached) as served now."""
    return f'{{"request_id":"{request_id}","cached":true,'.encode() + body[1:]


def digest(value: Any) -> str:
    """A short stable hash of a JSON-able value (request parameters, evidence)."""
    encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:24]


def channel(redis: Redis, name: str) -> str:
    """A pub/sub channel of this deployment. Channels, unlike keys, are shared by every database
    of a Redis server: the database number keeps two deployments on one server apart."""
    return f"{PREFIX}:db{redis.connection_pool.connection_kwargs.get('db', 0)}:{name}"


async def follow(
    redis: Redis,
    name: str,
    on_message: Callable[[str], Awaitable[None]],
    on_subscribed: Callable[[], Awaitable[None]] | None = None,
    retry_s: float = 1.0,
) -> None:
    """Call `on_message` with each message published on `name`, until cancelled. A lost
    connection is logged, counted and retried; `on_subscribed` runs on each (re)subscription,
    since messages may have been missed in between."""
    lost = False
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel(redis, name))
                if lost:
                    logger.warning("redis channel %s is back", name)
                    lost = False
                if on_subscribed is not None:
                    await on_subscribed()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        await on_message(message["data"].decode())
        except (RedisError, OSError, TimeoutError) as error:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # redis-py can turn our cancellation into a connection error
            CACHE_ERRORS.inc()
            if not lost:  # logged once an outage, not once a retry
                logger.warning("redis channel %s lost, retrying: %s", name, error)
                lost = True
            await asyncio.sleep(retry_s)


class FailOpen:
    """Runs Redis calls for callers that can do without them (the cache, the rate limit): a
    failure is logged, counted and answered None. After `down_after` failures in a row, calls
    are not even made for `retry_s`, so a Redis that is down or stalled costs requests no time.
    One slow reply alone (a busy machine) does not count as down: skipping the cache then
    would send every request of that second down the uncached path. One per process."""

    def __init__(self, retry_s: float = REDIS_RETRY_S, down_after: int = REDIS_DOWN_AFTER) -> None:
        self.retry_s = retry_s
        self.down_after = down_after
        self._failures = 0  # in a row
        self._down_until = 0.0  # monotonic time before which Redis is not tried again

    async def __call__(self, call: Awaitable[T]) -> T | None:
        if time.monotonic() < self._down_until:
            if inspect.iscoroutine(call):
                call.close()
            CACHE.labels("redis", "skipped").inc()
            return None
        try:
            result = await call
        except (RedisError, OSError, TimeoutError) as error:
            CACHE_ERRORS.inc()
            self._failures += 1
            if self._failures >= self.down_after:
                self._failures = 0
                self._down_until = time.monotonic() + self.retry_s
                logger.warning("redis unavailable, answering without it: %s", error)
            return None
        self._failures = 0
        return result


class NearCache:
    """Stored answers kept in this process for `ttl_s` seconds, grouped by shopper so an event
    drops all of theirs; at most `max_shoppers` shoppers, least recently used out first."""

    def __init__(self, ttl_s: float, max_shoppers: int = 10_000):
        self.ttl_s = ttl_s
        self.max_shoppers = max_shoppers
        self._entries: OrderedDict[str, dict[tuple[str, str], tuple[float, bytes]]] = OrderedDict()

    def get(self, user: str, kind: str, field: str) -> bytes | None:
        entries = self._entries.get(user)
        entry = entries.get((kind, field)) if entries else None
        if entry is None or entry[0] < time.monotonic():
            return None
        self._entries.move_to_end(user)
        return entry[1]

    def put(self, user: str, kind: str, field: str, body: bytes) -> None:
        if self.ttl_s <= 0:
            return
        self._entries.setdefault(user, {})[(kind, field)] = (time.monotonic() + self.ttl_s, body)
        self._entries.move_to_end(user)
        while len(self._entries) > self.max_shoppers:
            self._entries.popitem(last=False)

    def drop(self, user: str) -> None:
        self._entries.pop(user, None)

    def clear(self) -> None:
        self._entries.clear()


class Cache:
    def __init__(
        self, redis: Redis, model_version: str, list_ttl_s: int, reason_ttl_s: int,
        near_ttl_s: float = 0, fail_open: FailOpen | None = None,
    ):  # fmt: skip
        self.redis = redis
        self.model_version = model_version
        self.list_ttl_s = list_ttl_s
        self.reason_ttl_s = reason_ttl_s
        self.near = NearCache(min(near_ttl_s, list_ttl_s, reason_ttl_s))
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._guard = fail_open or FailOpen()

    def _answers_key(self, kind: str, user: str) -> str:
        # One hash per shopper and kind holds their cached answers, so an event drops them all
        # in one DEL.
        return f"{PREFIX}:{self.model_version}:{kind}:{digest(user)}"

    def _reason_key(self, user: str, item_id: int, writer: str, evidence: str) -> str:
        return f"{PREFIX}:{self.model_version}:{writer}:reason:{digest(user)}:{item_id}:{evidence}"

    def _ttl(self, kind: str) -> int:
        return self.list_ttl_s if kind == "lists" else self.reason_ttl_s

    async def get_answer(self, kind: str, user: str, field: str) -> bytes | None:
        """A stored response body (JSON bytes); kind is "lists" or "explain"."""
        if self._ttl(kind) <= 0:
            return None
        shopper = digest(user)
        near = self.near.get(shopper, kind, field)
        if near is not None:
            CACHE.labels(kind, "near_hit").inc()
            return near
        raw = await self._guard(self.redis.hget(self._answers_key(kind, user), field))
        CACHE.labels(kind, "hit" if raw else "miss").inc()
        if not isinstance(raw, bytes):
            return None
        self.near.put(shopper, kind, field, raw)
        return raw

    async def set_answer(self, kind: str, user: str, field: str, body: bytes) -> None:
        if self._ttl(kind) <= 0:
            return
        key = self._answers_key(kind, user)
        self.near.put(digest(user), kind, field, body)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, field, body)
        pipe.expire(key, self._ttl(kind))
        await self._guard(pipe.execute())

    async def invalidate_user(self, user: str) -> None:
        """Drop the shopper's cached lists and explanations (their history changed)."""
        keys = [self._answers_key(kind, user) for kind in ("lists", "explain")]
        self.near.drop(digest(user))
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*keys)
        pipe.publish(channel(self.redis, INVALIDATIONS), digest(user))
        await self._guard(pipe.execute())

    async def follow_invalidations(self) -> None:
        """Drop near entries as other processes invalidate shoppers; runs until cancelled.
        After a lost subscription the near cache starts empty: messages may have been missed."""

        async def drop(shopper: str) -> None:
            self.near.drop(shopper)

        async def clear() -> None:
            self.near.clear()

        await follow(self.redis, INVALIDATIONS, drop, on_subscribed=clear)

    async def get_reason(
        self, user: str, item_id: int, writer: str, evidence: str
    ) -> Written | None:
        """A reason written before by `writer` (or by its template fallback) for this shopper,
        item and evidence."""
        if self.reason_ttl_s <= 0:
            return None
        raw = await self._guard(self.redis.get(self._reason_key(user, item_id, writer, evidence)))
        CACHE.labels("reason", "hit" if raw else "miss").inc()
        if not isinstance(raw, bytes):
            return None
        try:
            stored = json.loads(raw)
            return Written(str(stored["text"]), str(stored["writer"]))
        except (ValueError, KeyError, TypeError):  # not ours, or a format of another release
            return None

    async def set_reason(
        self, user: str, item_id: int, writer: str, evidence: str, reason: Written
    ) -> None:
        if self.reason_ttl_s <= 0:
            return
        key = self._reason_key(user, item_id, writer, evidence)
        stored = json.dumps({"text": reason.text, "writer": reason.writer})
        await self._guard(self.redis.set(key, stored, ex=self.reason_ttl_s))

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
