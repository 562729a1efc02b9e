"""FailOpen: Redis taken for down only after failures in a row, then skipped for a while."""

import asyncio
import inspect

from redis.exceptions import TimeoutError as RedisTimeout

from app.cache import FailOpen


async def ok() -> str:
    return "ok"


async def slow_reply() -> str:
    raise RedisTimeout("Timeout reading from 127.0.0.1:6379")


def test_one_slow_reply_does_not_take_redis_for_down() -> None:
    async def calls() -> list[str | None]:
        guard = FailOpen(retry_s=60, down_after=3)
        return [await guard(slow_reply()), await guard(ok()), await guard(slow_reply()),
                await guard(slow_reply()), await guard(ok())]  # fmt: skip

    assert asyncio.run(calls()) == [None, "ok", None, None, "ok"]


def test_failures_in_a_row_skip_redis_until_the_retry_time() -> None:
    async def calls() -> tuple[list[str | None], str | None]:
        guard = FailOpen(retry_s=0.2, down_after=3)
        answers = [await guard(slow_reply()) for _ in range(3)]
        skipped = ok()
        answers.append(await guard(skipped))  # not run: Redis is taken for down
        assert inspect.getcoroutinestate(skipped) == "CORO_CLOSED"  # closed, never run
        await asyncio.sleep(0.25)
        return answers, await guard(ok())

    answers, after = asyncio.run(calls())
    assert answers == [None, None, None, None]
    assert after == "ok"
