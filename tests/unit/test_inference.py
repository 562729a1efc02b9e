"""The inference pool and the batcher: bounded, off the event loop, batching under load."""

import asyncio
import threading

import pytest

from app.errors import Overloaded
from app.serving.inference import Batcher, InferencePool


async def test_overload_is_refused_at_once() -> None:
    pool = InferencePool(workers=1, capacity=1)
    release = threading.Event()
    first = asyncio.create_task(pool.run(release.wait, 5))
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        await pool.run(release.wait, 5)
    release.set()
    assert await first is True
    pool.close()


async def test_concurrent_requests_share_a_batch_and_get_their_own_results() -> None:
    pool = InferencePool(workers=1, capacity=64)
    batches: list[list[int]] = []

    def square(items: list[int]) -> list[int]:
        assert threading.current_thread() is not threading.main_thread()
        batches.append(items)
        return [i * i for i in items]

    batcher: Batcher[int, int] = Batcher(pool, square)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
    assert results == [i * i for i in range(20)]
    assert sum(len(b) for b in batches) == 20
    assert len(batches) < 20  # batched, not one call each
    assert await batcher.submit(7) == 49  # a lone request is served too
    pool.close()


async def test_a_failing_batch_fails_its_requests_only() -> None:
    pool = InferencePool(workers=1, capacity=64)

    def run(items: list[int]) -> list[int]:
        if -1 in items:
            raise ValueError("bad input")
        return items

    batcher: Batcher[int, int] = Batcher(pool, run)
    with pytest.raises(ValueError, match="bad input"):
        await batcher.submit(-1)
    assert await batcher.submit(3) == 3
    pool.close()


async def test_the_batcher_sheds_load_beyond_capacity() -> None:
    pool = InferencePool(workers=1, capacity=2)
    release = threading.Event()

    def slow(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    batcher: Batcher[int, int] = Batcher(pool, slow, max_batch=1)
    running = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)  # in the pool now
    waiting = [asyncio.create_task(batcher.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded):
        await batcher.submit(9)
    release.set()
    assert await asyncio.gather(running, *waiting) == [0, 1, 2]
    pool.close()


async def test_each_worker_of_the_pool_runs_a_batch_at_once() -> None:
    pool = InferencePool(workers=2, capacity=64)
    both_running = threading.Barrier(2, timeout=5)  # broken (an error) if batches ran in turn

    def meet(items: list[int]) -> list[int]:
        both_running.wait()
        return items

    batcher: Batcher[int, int] = Batcher(pool, meet, max_batch=1)
    assert list(await asyncio.gather(batcher.submit(1), batcher.submit(2))) == [1, 2]
    pool.close()


def test_a_pool_sets_its_threads_torch_thread_count() -> None:
    import torch

    async def counts() -> tuple[int, int]:
        one, two = InferencePool(1, 1, torch_threads=1), InferencePool(1, 1, torch_threads=2)
        try:
            return await one.run(torch.get_num_threads), await two.run(torch.get_num_threads)
        finally:
            one.close()
            two.close()

    assert asyncio.run(counts()) == (1, 2)
