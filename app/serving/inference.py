"""The bounded pool the model runs in: torch never runs on the event loop, and when every slot
is taken new calls are refused at once (503 + Retry-After) instead of queueing without bound."""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import ParamSpec, TypeVar

from app.errors import Overloaded

P = ParamSpec("P")
T = TypeVar("T")


class InferencePool:
    def __init__(self, workers: int, capacity: int) -> None:
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="inference")
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
