"""API keys against the real Postgres: writing events needs a key with events:write, reads need
one only when configured, revoked and unknown keys are refused; the keys CLI; CORS; the demo is
off unless configured."""

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from app.auth import hash_key, new_key
from app.config import Settings
from app.db.engine import libpq_url
from app.main import create_app
from tests.integration.test_health import client_for

EVENT = {"events": [{"event_id": "a-1", "user_id": "u1", "item_id": "1", "event": "view"}]}


def add_key(database_url: str, name: str, scopes: list[str]) -> str:
    """A key stored the way `python -m app keys create` stores one."""
    key = new_key()
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_key (name, key_hash, scopes, created_at) VALUES (%s, %s, %s, now())",
            (name, hash_key(key), scopes),
        )
    return key


@pytest.fixture
def keys(settings: Settings) -> Iterator[dict[str, str]]:
    made = {scope: add_key(settings.database_url, f"t-{scope}", [scope]) for scope in ("read",)}
    made["events:write"] = add_key(settings.database_url, "t-writer", ["events:write"])
    yield made
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute("DELETE FROM api_key WHERE name LIKE 't-%'")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_writing_events_needs_a_key_with_the_scope(
    settings: Settings, keys: dict[str, str]
) -> None:
    async with client_for(create_app(settings)) as client:
        missing = await client.post("/v1/events", json=EVENT)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["type"] == "urn:reasonrec:problem:unauthorized"
        made_up = await client.post("/v1/events", json=EVENT, headers=bearer(new_key()))
        assert made_up.status_code == 401
        reader = await client.post("/v1/events", json=EVENT, headers=bearer(keys["read"]))
        assert reader.status_code == 403
        writer = await client.post("/v1/events", json=EVENT, headers=bearer(keys["events:write"]))
        assert writer.status_code not in (401, 403)  # past the key check (no model here: 503)
        assert (await client.get("/v1/items/1")).status_code != 401  # reads open by default


async def test_a_revoked_key_is_refused(settings: Settings, keys: dict[str, str]) -> None:
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute("UPDATE api_key SET revoked_at = now() WHERE name = 't-writer'")
    async with client_for(create_app(settings)) as client:
        refused = await client.post("/v1/events", json=EVENT, headers=bearer(keys["events:write"]))
        assert refused.status_code == 401


async def test_reads_need_a_key_when_configured(settings: Settings, keys: dict[str, str]) -> None:
    keyed = settings.model_copy(update={"read_requires_key": True})
    async with client_for(create_app(keyed)) as client:
        assert (await client.get("/v1/items/1")).status_code == 401
        assert (await client.get("/v1/items/1", headers=bearer(keys["read"]))).status_code != 401
        assert (await client.get("/healthz")).status_code == 200  # probes stay open


async def test_cors_allows_only_the_listed_origins(settings: Settings) -> None:
    allowed = settings.model_copy(update={"cors_origins": ["https://shop.example"]})
    preflight = {"Access-Control-Request-Method": "GET"}
    async with client_for(create_app(allowed)) as client:
        ok = await client.options(
            "/v1/items/1", headers={"Origin": "https://shop.example", **preflight}
        )
        assert ok.headers["access-control-allow-origin"] == "https://shop.example"
        other = await client.options(
            "/v1/items/1", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in other.headers


async def test_the_demo_is_off_unless_configured(settings: Settings) -> None:
    async with client_for(create_app(settings)) as client:
        assert (await client.get("/demo")).status_code == 404
        assert (
            await client.post("/demo/cart", json={"user_id": "u", "item_id": "1"})
        ).status_code == 404


def test_keys_cli_creates_lists_and_revokes(settings: Settings) -> None:
    env = {**os.environ, "RECS_DATABASE_URL": settings.database_url}

    def app_cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "app", "keys", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    created = app_cli("create", "t-cli", "--scope", "events:write", "--scope", "read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("rr_")
    with psycopg.connect(libpq_url(settings.database_url)) as conn:
        stored = conn.execute(
            "SELECT key_hash, scopes FROM api_key WHERE name = 't-cli'"
        ).fetchone()
    assert stored == (hash_key(key), ["events:write", "read"])  # the hash, never the key
    assert app_cli("create", "t-cli", "--scope", "read").returncode == 1  # names are unique
    assert app_cli("create", "t-x", "--scope", "root").returncode != 0  # unknown scope
    listed = app_cli("list")
    assert "t-cli" in listed.stdout + listed.stderr
    assert key not in listed.stdout + listed.stderr
    assert app_cli("revoke", "t-cli").returncode == 0
    assert app_cli("revoke", "t-cli").returncode == 1  # already revoked
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        conn.execute("DELETE FROM api_key WHERE name = 't-cli'")
