"""Liveness and readiness probes."""

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text

from app.deps import EngineDep, RedisDep, SettingsDep
from app.errors import NotReady, Problem
from app.lifespan import ensure_service

router = APIRouter(tags=["health"])

Check = Literal["ok", "unreachable", "not_loaded"]


class Alive(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Check]


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Alive:
    return Alive()


@router.get(
    "/readyz",
    summary="Postgres and Redis are reachable and the model is loaded",
    responses={503: {"model": Problem, "description": "A dependency is unreachable."}},
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
    if any(state != "ok" for state in checks.values()):
        failing = ", ".join(name for name, state in checks.items() if state != "ok")
        raise NotReady(f"unreachable: {failing}", checks=checks)
    return Ready(checks=checks)
