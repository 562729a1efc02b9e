"""Open the service's connections and load the model at startup; close them at shutdown."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cache import Cache
from app.config import Settings
from app.db.engine import create_engine_for_service
from app.reasons.template import TemplateWriter
from app.serving.bundle import BundleError, latest_version, load_bundle
from app.serving.catalog import load_catalog
from app.serving.inference import Batcher, InferencePool
from app.serving.recommender import Recommender
from app.serving.retriever import Retriever, ScoreRequest
from app.serving.service import Service
from app.train.data import FloatArray

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine_for_service(settings.database_url)
    # Short socket timeouts: a stalled Redis must cost a request milliseconds, not seconds.
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, health_check_interval=30
    )
    # One torch thread per inference worker: the calls are small, and the workers run in parallel.
    torch.set_num_threads(1)
    pool = InferencePool(settings.inference_workers, settings.inference_queue)
    app.state.engine = engine
    app.state.redis = redis
    app.state.service = None
    app.state.load_service = lambda: load_service(settings, engine, redis, pool)
    await ensure_service(app)
    # Everything loaded so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stall the event loop for ~100 ms now and then.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        pool.close()
        await redis.aclose()
        await engine.dispose()


async def ensure_service(app: FastAPI) -> bool:
    """Load the model and catalog if they are not loaded yet. A failure (no bundle, Postgres
    down) leaves the process up and not ready; /readyz retries, so it recovers without a
    restart."""
    if app.state.service is not None:
        return True
    try:
        app.state.service = await app.state.load_service()
    except (BundleError, OSError) as error:
        logger.error("no model loaded, recommendations unavailable: %s", error)
    except SQLAlchemyError as error:
        logger.error("could not load the catalog from Postgres: %s", error)
    return app.state.service is not None


async def load_service(
    settings: Settings, engine: AsyncEngine, redis: Redis, pool: InferencePool
) -> Service:
    bundle = load_bundle(latest_version(settings.models_dir / "two_tower"))
    async with engine.connect() as conn:
        catalog = await load_catalog(conn, bundle.item_skus)
    retriever = Retriever(bundle)
    recommender = Recommender(retriever, catalog)
    # Warm up: the first torch call pays for lazy initialisation; no request should.
    retriever.popular_in_country(None)
    await pool.run(retriever.score_session, catalog.indices(list(catalog.index_of)[:1]), None, 0)
    cache = Cache(redis, bundle.version, settings.list_cache_ttl_s, settings.reason_cache_ttl_s)
    logger.info("model %s loaded: %d items", bundle.version, len(catalog))
    batcher: Batcher[ScoreRequest, FloatArray] = Batcher(
        pool, lambda requests: list(retriever.score_requests(requests))
    )
    return Service(
        bundle, catalog, recommender, engine, cache, pool, batcher, TemplateWriter(),
        settings.as_of,
    )  # fmt: skip
