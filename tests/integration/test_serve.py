"""`python -m app serve` as deployed: a real uvicorn with several worker processes."""

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TinyWorld, serving


@pytest.fixture(scope="module")
def two_workers(tiny_world: TinyWorld) -> Iterator[str]:
    with serving(tiny_world, workers=2) as base:
        yield base


def healthz_count(metrics: str) -> float:
    pattern = r'^reasonrec_request_seconds_count\{(?=[^}]*route="/healthz")[^}]*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, metrics, re.MULTILINE))


def test_metrics_add_up_every_worker(two_workers: str) -> None:
    before = healthz_count(httpx.get(f"{two_workers}/metrics").text)
    for _ in range(40):
        # A new connection each time, so the requests spread over both workers.
        assert httpx.get(f"{two_workers}/healthz").status_code == 200
    after = healthz_count(httpx.get(f"{two_workers}/metrics").text)
    assert after - before == 40
