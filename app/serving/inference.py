"""The bounded pool the model runs in: torch never runs on the event loop, and when every slot
is taken new calls are refused at once (503 + Retry-After) instead of queueing without bound.
The batcher groups concurrent requests' forward passes."""

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Generic, ParamSpec, TypeVar

import torch

from app.errors import Overloaded

P = ParamSpec("P")
T = TypeVar("T")
In = TypeVar("In")
Out = TypeVar("Out")


def one_torch_thread_here() -> int:
    """Give the calling thread (the event loop's) one torch thread; return what it had. It runs
    no model call, but anything it computed with torch's default (a thread per core) would keep
    an OpenMP team. With more OpenMP threads than cores in a process, libgomp stops spin-waiting
    between parallel regions: a batch of 10 reasons in the LM's thread then took 3.4 s, not 2.6."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


class InferencePool:
    """`workers` threads, each running torch on `torch_threads` cores (None: torch's default).
    The count is set in each thread: it is per thread in torch's OpenMP backend, so the
    ranker's pool and the reason LM's can differ."""

    def __init__(self, workers: int, capacity: int, torch_threads: int | None = None) -> None:
        self.executor = ThreadPoolExecutor(
            workers, thread_name_prefix="inference",
            initializer=partial(torch.set_num_threads, torch_threads) if torch_threads else None,
        )  # fmt: skip
        self.workers = workers
        self.capacity = capacity
        self.in_flight = 0  # touched only on the event loop: no lock needed

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.in_flight >= self.capacity:
            raise Overloaded(f"all {self.capacity} inference slots are busy; retry shortly")
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, partial(fn, *args, **kwargs))
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class Batcher(Generic[In, Out]):
    """Runs the model calls of concurrent requests as one batch in the pool. On CPU a forward
    pass costs little more for 32 rows than for one (per-operation overhead dominates), so under
    load throughput grows with the batch; alone, a request waits for nothing.

    Requests that arrive while every worker of the pool runs a batch form the next one. At most
    `capacity` may wait."""

    def __init__(
        self, pool: InferencePool, run: Callable[[list[In]], Sequence[Out]], max_batch: int = 64
    ) -> None:
        self.pool = pool
        self.run = run
        self.max_batch = max_batch
        self.waiting: list[tuple[In, asyncio.Future[Out]]] = []
        self.drainer: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        if len(self.waiting) >= self.pool.capacity:
            raise Overloaded(f"{len(self.waiting)} requests wait for the model; retry shortly")
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        if self.drainer is None or self.drainer.done():
            self.drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        running: set[asyncio.Task[None]] = set()
        while self.waiting or running:
            if self.waiting and len(running) < self.pool.workers:
                await asyncio.sleep(0)  # requests already running on the loop join this batch
                batch = self.waiting[: self.max_batch]
                del self.waiting[: self.max_batch]
                running.add(asyncio.create_task(self._run(batch)))
            else:
                _, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)

    async def _run(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self.pool.run(self.run, [item for item, _ in batch])
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the caller may have gone away
                future.set_result(result)
