"""Liveness and readiness probes."""

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.deps import EngineDep, RedisDep, SettingsDep
from app.errors import NotReady, Problem
from app.lifespan import ensure_service

router = APIRouter(tags=["health"])

Check = Literal["ok", "unreachable", "not_loaded"]


class Alive(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready", "degraded"] = Field(
        description="degraded: Redis is unreachable; answers go on without the cache."
    )
    checks: dict[str, Check]
    warnings: list[str] = Field(
        default_factory=list,
        description="What an operator should know though the service is ready: e.g. the reason"
        " LM could not be loaded (template reasons are served) or has no adapter.",
    )


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Alive:
    return Alive()


@router.get(
    "/readyz",
    summary="Postgres is reachable and the model is loaded",
    description="Ready (200) while the service can answer: Postgres reachable and the model"
    " loaded. Redis is checked too, but an unreachable Redis only makes the answer `degraded`:"
    " the service answers without its cache, and a cache outage must not take every replica"
    " out of the load balancer.",
    responses={503: {"model": Problem, "description": "Postgres is unreachable or no model."}},
)
async def readyz(
    request: Request, engine: EngineDep, redis: RedisDep, settings: SettingsDep
) -> Ready:
    async def postgres() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def cache() -> None:
        await redis.ping()

    names = ("postgres", "redis")
    results = await asyncio.gather(
        *(asyncio.wait_for(probe(), settings.readiness_timeout_s) for probe in (postgres, cache)),
        return_exceptions=True,
    )
    checks: dict[str, Check] = {
        name: "unreachable" if isinstance(result, BaseException) else "ok"
        for name, result in zip(names, results, strict=True)
    }
    checks["model"] = "ok" if await ensure_service(request.app) else "not_loaded"
    failing = [name for name, state in checks.items() if state != "ok"]
    if set(failing) - {"redis"}:
        raise NotReady(f"unavailable: {', '.join(failing)}", checks=checks)
    warning = request.app.state.service.writer.warning
    return Ready(
        status="degraded" if failing else "ready", checks=checks,
        warnings=[warning] if warning else [],
    )  # fmt: skip
