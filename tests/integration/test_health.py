"""Liveness, readiness and the problem+json envelope, against real Postgres and Redis."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app

# Nothing listens on port 1: a dependency that is down.
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/nothing"
DEAD_REDIS = "redis://127.0.0.1:1/0"


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def test_healthz(settings: Settings) -> None:
    async with client_for(create_app(settings)) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_postgres_and_redis_answer(settings: Settings) -> None:
    async with client_for(create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"postgres": "ok", "redis": "ok", "model": "ok"},
        "warnings": [],
    }


async def test_readyz_is_degraded_not_down_when_redis_is(settings: Settings) -> None:
    """The service answers without its cache: it stays in the load balancer."""
    app = create_app(settings.model_copy(update={"redis_url": DEAD_REDIS}))
    async with client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "degraded",
        "checks": {"postgres": "ok", "redis": "unreachable", "model": "ok"},
        "warnings": [],
    }


async def test_readyz_says_when_the_reason_lm_could_not_be_loaded(
    settings: Settings, tmp_path: Path
) -> None:
    """Ready (reasons are served, by the template), but an operator is told why."""
    missing = tmp_path / "no-such-model.gguf"
    app = create_app(
        settings.model_copy(update={"reason_writer": "transformers", "reason_model": str(missing)})
    )
    async with client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    [warning] = response.json()["warnings"]
    assert "the reason LM could not be loaded" in warning
    assert str(missing) in warning
    assert "template reasons are served" in warning
    assert app.state.service.writer.name == "template"


async def test_readyz_when_postgres_is_down(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"database_url": DEAD_POSTGRES}))
    async with client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["checks"] == {"postgres": "unreachable", "redis": "ok", "model": "not_loaded"}
    assert body["status"] == 503
    assert body["type"] == "urn:reasonrec:problem:not-ready"
    assert body["detail"] == "unavailable: postgres, model"


async def test_unknown_route_and_method_are_problems(settings: Settings) -> None:
    async with client_for(create_app(settings)) as client:
        missing = await client.get("/nope")
        wrong_method = await client.post("/healthz")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Not Found",
        "instance": "/nope",
    }
    assert wrong_method.status_code == 405
    assert wrong_method.json()["title"] == "Method Not Allowed"


async def test_405_allows_every_method_of_the_path(settings: Settings) -> None:
    """GET and POST /v1/recommend are two routes; Allow names both."""
    async with client_for(create_app(settings)) as client:
        response = await client.request("OPTIONS", "/v1/recommend")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert set(response.headers["allow"].split(", ")) == {"GET", "POST"}


async def test_unexpected_errors_are_problems_without_tracebacks(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with client_for(app) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["detail"] == "An unexpected error occurred."


async def test_validation_errors_are_problems(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/needs-int")
    async def needs_int(n: int) -> int:
        return n

    async with client_for(app) as client:
        response = await client.get("/needs-int", params={"n": "<script>"})
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "urn:reasonrec:problem:validation-error"
    assert body["errors"][0]["loc"] == ["query", "n"]
    assert "<script>" not in response.text
