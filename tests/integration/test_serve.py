"""`python -m app serve` as deployed: a real uvicorn with several worker processes."""

import json
import os
import re
import signal
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import TinyWorld, serving


@pytest.fixture(scope="module")
def server_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "stderr.log"


@pytest.fixture(scope="module")
def two_workers(tiny_world: TinyWorld, server_log: Path) -> Iterator[str]:
    with serving(tiny_world, workers=2, log=server_log, RECS_LOG_LEVEL="info") as base:
        yield base


def test_every_worker_logs_json_lines_with_the_request_id(
    two_workers: str, server_log: Path
) -> None:
    for n in range(20):  # a new connection each time: both workers answer some
        answer = httpx.get(f"{two_workers}/healthz", headers={"X-Request-ID": f"trace-{n}"})
        assert answer.headers["x-request-id"] == f"trace-{n}"
    deadline = time.monotonic() + 10
    logged: dict[str, dict[str, object]] = {}
    while len(logged) < 20 and time.monotonic() < deadline:
        lines = server_log.read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        logged = {e["request_id"]: e for e in entries if str(e["request_id"]).startswith("trace-")}
        time.sleep(0.1)
    assert set(logged) == {f"trace-{n}" for n in range(20)}
    assert all(e["route"] == "/healthz" and e["status"] == 200 for e in logged.values())
    # Every line a worker wrote is JSON (none from a logger left unconfigured).
    assert all(line.startswith("{") for line in server_log.read_text().splitlines() if line)


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


def sockets_on(port: int) -> dict[str, list[tuple[str, int]]]:
    """TCP sockets whose local port is `port`, by state ("0A" listening, "01" established), as
    (inode, pid of a process holding it): a socket shared by two processes is there twice."""
    states: dict[str, str] = {}  # inode -> state
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                states[fields[9]] = fields[3]
    held: dict[str, list[tuple[str, int]]] = {"0A": [], "01": []}
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            links = [fd.readlink().name for fd in (process / "fd").iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        for link in links:
            inode = link.removeprefix("socket:[").removesuffix("]")
            if link.startswith("socket:[") and states.get(inode) in held:
                held[states[inode]].append((inode, int(process.name)))
    return held


def test_each_worker_listens_on_its_own_socket_and_gets_its_share(two_workers: str) -> None:
    port = urlsplit(two_workers).port
    assert port is not None
    listening = sockets_on(port)["0A"]
    # Two sockets, each held by one worker alone: the kernel spreads connections over them
    # (SO_REUSEPORT). uvicorn's own workers would all hold one socket, inherited.
    assert len({inode for inode, _ in listening}) == 2
    assert len(listening) == 2
    workers = {pid for _, pid in listening}
    # A burst of connections, as a load balancer or wrk opens them, each kept open.
    connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
    try:
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        for connection in connections:
            assert connection.recv(4096).startswith(b"HTTP/1.1 200")
        shares = Counter(pid for _, pid in sockets_on(port)["01"])
    finally:
        for connection in connections:
            connection.close()
    assert sum(shares[pid] for pid in workers) == 32
    # Hashed over two sockets, fewer than 4 of 32 on one worker has odds of about 1 in 10^5.
    assert all(shares[pid] >= 4 for pid in workers), shares


def test_a_worker_that_dies_is_replaced(two_workers: str) -> None:
    port = urlsplit(two_workers).port
    assert port is not None
    before = {pid for _, pid in sockets_on(port)["0A"]}
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    now = before
    while time.monotonic() < deadline:
        now = {pid for _, pid in sockets_on(port)["0A"]}
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.2)
    assert victim not in now
    assert len(now) == 2
    for _ in range(20):  # new connections, so both workers answer some
        assert httpx.get(f"{two_workers}/healthz").status_code == 200
