"""/v1/admin: operate a running service. Every route needs an API key with the admin scope."""

import logging

from fastapi import APIRouter, Depends, Request
from redis.exceptions import RedisError

from app.api.responses import ERRORS
from app.auth import require
from app.cache import ACTIVE_RANKER, RELOADS, channel
from app.deps import RedisDep, ServiceDep, SettingsDep
from app.errors import InvalidRequest, NotFound
from app.lifespan import reload_service
from app.metrics import CACHE_ERRORS
from app.schemas import ModelList, Reloaded, ReloadRequest
from app.serving.bundle import BundleError, UnknownVersion, versions

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require("admin"))])


@router.get("/models", summary="Ranker versions: serving and on disk", responses=ERRORS)
async def list_models(service: ServiceDep, settings: SettingsDep) -> ModelList:
    available = [path.name for path in versions(settings.models_dir / "two_tower")]
    return ModelList(serving=service.bundle.version, available=available)


@router.post(
    "/reload",
    summary="Switch to another ranker version without a restart",
    description="Loads the version (default: the newest on disk) beside the one serving, then"
    " switches in one step: requests in flight finish on the old version, later ones use the"
    " new, and none fails. Other server processes sharing this Redis switch too, and so do"
    " processes that start later or were cut off from Redis when it was announced. A version"
    " that fails to load leaves the running one serving. The reason writer is kept.",
    responses=ERRORS,
)
async def reload(request: Request, redis: RedisDep, body: ReloadRequest | None = None) -> Reloaded:
    version = body.version if body else None
    try:
        previous, service = await reload_service(request.app, version)
    except UnknownVersion as error:
        raise NotFound(str(error)) from error
    except BundleError as error:
        raise InvalidRequest(f"the model cannot be loaded: {error}") from error
    try:
        # Kept for processes that are not listening now (starting, or cut off from Redis).
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set(ACTIVE_RANKER, service.bundle.version)
            pipe.publish(channel(redis, RELOADS), service.bundle.version)
            _, notified = await pipe.execute()
    except (RedisError, OSError) as error:
        CACHE_ERRORS.inc()
        logger.warning("reload not announced to other processes, redis unavailable: %s", error)
        notified = 0
    return Reloaded(previous=previous, serving=service.bundle.version, processes_notified=notified)
