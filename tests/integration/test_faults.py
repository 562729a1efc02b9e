"""Faults injected into a real server (`python -m app serve`) while it answers: its Redis killed
and started again, the way to Postgres cut or silenced. Our own redis-server and a TCP proxy in
front of Postgres (bench/faults.py) take the faults; the machine's servers are never touched."""

import itertools
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.db.engine import libpq_url
from bench.faults import RedisServer, TcpProxy
from tests.conftest import Shoppers, TinyWorld, serving, wait_for
from tests.integration.test_auth import add_key


def metric(base: str, name: str, labels: str = "") -> float:
    text = httpx.get(f"{base}/metrics").text
    pattern = rf"^{name}(?:\{{[^}}]*{re.escape(labels)}[^}}]*\}})? (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


class Traffic:
    """Storefront traffic: recommendations (with reasons), explanations and events, from a few
    threads at once. Every answer's status is kept."""

    def __init__(self, base: str, shoppers: Shoppers, key: str) -> None:
        self.base, self.shoppers, self.key = base, shoppers, key
        self.statuses: list[int] = []
        self.event_ids: list[str] = []
        self._turn = itertools.count()

    def _one(self, client: httpx.Client) -> None:
        n = next(self._turn)
        user = self.shoppers.users[n % len(self.shoppers.users)]
        item = self.shoppers.items[n % len(self.shoppers.items)]
        if n % 5 == 4:
            event_id = f"fault-{uuid.uuid4().hex}"
            self.event_ids.append(event_id)
            event = {"event_id": event_id, "user_id": user, "item_id": item, "event": "view"}
            answer = client.post(
                "/v1/events", json={"events": [event]},
                headers={"Authorization": f"Bearer {self.key}"},
            )  # fmt: skip
        elif n % 5 == 3:
            answer = client.get("/v1/explain", params={"user_id": user, "item_id": item})
        else:
            params: dict[str, str | int | bool] = {
                "user_id": user,
                "k": 5,
                "with_reasons": n % 2 == 0,
            }
            answer = client.get("/v1/recommend", params=params)
        self.statuses.append(answer.status_code)

    def run(self, seconds: float, threads: int = 4) -> None:
        def loop() -> None:
            with httpx.Client(base_url=self.base, timeout=10) as client:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    self._one(client)

        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(loop) for _ in range(threads)]:
                future.result()


def redis_state(base: str) -> str:
    return str(httpx.get(f"{base}/readyz").json()["checks"]["redis"])


def test_redis_killed_mid_run_fails_no_request(tiny_world: TinyWorld, shoppers: Shoppers) -> None:
    key = add_key(tiny_world.database_url, "faults", ["events:write"])
    with RedisServer() as redis, serving(tiny_world, RECS_REDIS_URL=redis.url) as base:
        traffic = Traffic(base, shoppers, key)
        traffic.run(2)  # the cache fills
        errors_before = metric(base, "reasonrec_cache_errors_total")

        redis.stop()
        traffic.run(3)
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200, "a cache outage must not take the service out"
        assert ready.json()["status"] == "degraded"
        assert metric(base, "reasonrec_cache_errors_total") > errors_before  # logged and counted

        redis.start()  # empty, as after a crash
        wait_for(lambda: redis_state(base) == "ok", 10)
        traffic.run(1)
        hits = metric(base, "reasonrec_cache_total", 'result="hit"')
        traffic.run(2)
        assert metric(base, "reasonrec_cache_total", 'result="hit"') > hits, (
            "the cache is used again"
        )

    assert len(traffic.statuses) > 50
    assert set(traffic.statuses) == {200}, "no request failed while Redis was down"
    with psycopg.connect(libpq_url(tiny_world.database_url)) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM interaction WHERE event_id = ANY(%s)", (traffic.event_ids,)
        ).fetchone()
    assert stored == (len(traffic.event_ids),), "every event was stored, Redis or not"


@pytest.fixture(scope="module")
def proxied(tiny_world: TinyWorld) -> Iterator[tuple[str, TcpProxy]]:
    """A server whose only way to Postgres is a proxy the test can cut."""
    url = make_url(tiny_world.database_url)
    with TcpProxy(url.port or 5432) as proxy:
        through = url.set(port=proxy.port).render_as_string(hide_password=False)
        with serving(tiny_world, RECS_DATABASE_URL=through) as base:
            yield base, proxy


@pytest.mark.parametrize("stall", [False, True], ids=["refused", "silent"])
def test_postgres_unreachable_answers_503_quickly_and_recovers(
    proxied: tuple[str, TcpProxy], shoppers: Shoppers, stall: bool
) -> None:
    base, proxy = proxied
    # Shoppers of their own: the other case leaves its shoppers cached.
    cached_user, other_user = shoppers.users[2:4] if stall else shoppers.users[4:6]
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/v1/recommend", params={"user_id": cached_user}).status_code == 200

        proxy.cut(stall=stall)
        try:
            started = time.monotonic()
            ready = client.get("/readyz")
            assert time.monotonic() - started < 3
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"] == "unreachable"

            started = time.monotonic()
            answer = client.get("/v1/recommend", params={"user_id": other_user})
            took = time.monotonic() - started
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"] == "urn:reasonrec:problem:database-unavailable"
            assert answer.headers["retry-after"] == "5"
            assert took < 5, f"a quick 503, not a hang ({took:.1f} s)"
            # What is cached is still served.
            cached = client.get("/v1/recommend", params={"user_id": cached_user})
            assert cached.status_code == 200
        finally:
            proxy.restore()

        took = wait_for(lambda: client.get("/readyz").status_code == 200, 15)
        assert client.get("/v1/recommend", params={"user_id": other_user}).status_code == 200
    assert took < 15  # recovered without a restart
