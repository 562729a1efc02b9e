"""`python -m app serve` as deployed: a real uvicorn with several worker processes."""

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import REDIS_URL, TinyWorld


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def two_workers(tiny_world: TinyWorld) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ, "RECS_DATABASE_URL": tiny_world.database_url, "RECS_REDIS_URL": REDIS_URL,
        "RECS_MODELS_DIR": str(tiny_world.models_dir), "RECS_WORKERS": "2",
        "RECS_LOG_LEVEL": "warning", "RECS_REASON_WRITER": "template",
    }  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([sys.executable, "-m", "app", "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        ready_in_a_row, deadline = 0, time.monotonic() + 90
        while ready_in_a_row < 20 and time.monotonic() < deadline:
            try:
                ok = httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready_in_a_row = ready_in_a_row + 1 if ok else 0
            time.sleep(0 if ok else 0.5)
        assert ready_in_a_row == 20, "both workers should become ready"
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


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
