"""Typed dependencies: routers reach app.state only through these. All async: FastAPI runs a
sync dependency in a worker thread, a thread hop per request for a dictionary lookup."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.errors import NotReady
from app.serving.service import Service


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _redis(request: Request) -> "Redis":
    redis: Redis = request.app.state.redis
    return redis


async def _service(request: Request) -> Service:
    service: Service | None = request.app.state.service
    if service is None:
        raise NotReady("the model is not loaded; see /readyz")
    return service


async def _request_id(request: Request) -> str:
    request_id: str = request.state.request_id
    return request_id


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[AsyncEngine, Depends(_engine)]
RedisDep = Annotated["Redis", Depends(_redis)]
ServiceDep = Annotated[Service, Depends(_service)]
RequestIdDep = Annotated[str, Depends(_request_id)]
