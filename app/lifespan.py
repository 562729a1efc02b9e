"""Open the service's connections and load the model at startup; close them at shutdown."""

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import torch
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.auth import KeyStore
from app.cache import ACTIVE_RANKER, RELOADS, Cache, FailOpen, follow
from app.config import Settings
from app.db.engine import create_engine_for_service
from app.db.tables import app_user, item_popularity
from app.metrics import MODEL_RELOADS
from app.reasons import evidence
from app.reasons.guard import Vocabulary
from app.reasons.sanitise import clean
from app.reasons.writers import Generator, LMWriter, ReasonWriter, TemplateWriter
from app.schemas import RecommendRequest
from app.serving.bundle import BundleError, find_version, latest_version, load_bundle
from app.serving.catalog import load_catalog
from app.serving.inference import Batcher, InferencePool, one_torch_thread_here
from app.serving.recommender import Recommender
from app.serving.retriever import Retriever, ScoreRequest
from app.serving.service import Service
from app.train.data import FloatArray

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine_for_service(settings.database_url, settings.database_timeout_s)
    # Short socket timeouts and no retries: a stalled or dead Redis must cost a request
    # milliseconds, not seconds (redis-py would otherwise retry with backoff).
    redis = Redis.from_url(
        settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5,
        health_check_interval=30, retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    one_torch_thread_here()
    # One torch thread per inference worker: the calls are small, and the workers run in parallel.
    pool = InferencePool(settings.inference_workers, settings.inference_queue, torch_threads=1)
    # The reason LM gets its own thread: a generation (up to seconds on CPU) never holds up
    # the ranker. One batch runs at a time; a few more may wait.
    lm_pool = InferencePool(1, 4, torch_threads=reason_threads(settings))
    app.state.engine = engine
    app.state.keys = KeyStore(engine)
    app.state.redis = redis
    # One for the cache and the rate limit: a Redis known to be down is skipped by both.
    app.state.fail_open = fail_open = FailOpen()
    app.state.service = None
    app.state.invalidations = None
    app.state.reload_lock = asyncio.Lock()
    app.state.load_service = lambda version=None, previous=None: load_service(
        settings, engine, redis, pool, lm_pool, version, previous, fail_open
    )
    await ensure_service(app)
    reloads = asyncio.create_task(
        follow(redis, RELOADS, lambda v: follow_reload(app, v), lambda: catch_up(app, redis))
    )
    # Everything loaded so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stall the event loop for ~100 ms now and then.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        tasks = [t for t in (reloads, app.state.invalidations) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=1)
        pool.close()
        lm_pool.close()
        await redis.aclose()
        await engine.dispose()


def reason_threads(settings: Settings) -> int:
    return settings.reason_threads or os.cpu_count() or 1


@asynccontextmanager
async def offline_service(settings: Settings) -> AsyncIterator[Service]:
    """The service outside a server (reason training, cache warming, benchmarks)."""
    engine = create_engine_for_service(settings.database_url)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    threads = one_torch_thread_here()
    pool = InferencePool(1, 1_000, torch_threads=1)
    lm_pool = InferencePool(1, 1_000, torch_threads=reason_threads(settings))
    try:
        yield await load_service(settings, engine, redis, pool, lm_pool)
    finally:
        torch.set_num_threads(threads)
        pool.close()
        lm_pool.close()
        await redis.aclose()
        await engine.dispose()


async def ensure_service(app: FastAPI) -> bool:
    """Load the model and catalog if they are not loaded yet. A failure (no bundle, Postgres
    down) leaves the process up and not ready; /readyz retries, so it recovers without a
    restart."""
    if app.state.service is not None:
        return True
    try:
        async with app.state.reload_lock:
            if app.state.service is None:
                switch_to(app, await app.state.load_service())
    except (BundleError, OSError) as error:
        logger.error("no model loaded, recommendations unavailable: %s", error)
    except SQLAlchemyError as error:
        logger.error("could not load the catalog from Postgres: %s", error)
    return app.state.service is not None


def switch_to(app: FastAPI, service: Service) -> None:
    """Serve `service` from now on. One assignment: a request reads app.state.service once
    (deps._service), so it sees one model version from start to end."""
    app.state.service = service
    if app.state.invalidations is not None:
        app.state.invalidations.cancel()
    app.state.invalidations = asyncio.create_task(service.cache.follow_invalidations())


async def reload_service(app: FastAPI, version: str | None) -> tuple[str | None, Service]:
    """Load ranker `version` (None: the newest) beside the one serving, then switch to it;
    the reason writer is kept. Requests go on meanwhile; a bundle that fails to load leaves
    the running one serving. Returns the previous version and the new service."""
    if version is None:
        version = latest_version(app.state.settings.models_dir / "two_tower").name
    async with app.state.reload_lock:
        previous: Service | None = app.state.service
        try:
            service = await app.state.load_service(version, previous)
        except Exception:
            MODEL_RELOADS.labels("failed").inc()
            raise
        switch_to(app, service)
    MODEL_RELOADS.labels("ok").inc()
    logger.info(
        "ranker switched: %s -> %s", previous and previous.bundle.version, service.bundle.version
    )
    return (previous.bundle.version if previous else None), service


async def follow_reload(app: FastAPI, version: str) -> None:
    """Another process reloaded to `version`: do the same here, unless already on it."""
    service: Service | None = app.state.service
    if service is not None and service.bundle.version == version:
        return
    try:
        await reload_service(app, version)
    except (BundleError, OSError, SQLAlchemyError) as error:
        logger.error("could not follow the reload to %s: %s", version, error)


async def catch_up(app: FastAPI, redis: Redis) -> None:
    """On (re)subscribing to reloads: a process started since, or cut off from Redis when one
    was announced, switches to the version last reloaded to."""
    active = await redis.get(ACTIVE_RANKER)
    if isinstance(active, bytes):
        await follow_reload(app, active.decode())


def bundle_path(settings: Settings, version: str | None) -> Path:
    """Where ranker `version` lives; None: RECS_MODEL_VERSION, or else the newest."""
    root = settings.models_dir / "two_tower"
    version = version or settings.model_version
    return find_version(root, version) if version else latest_version(root)


async def load_service(
    settings: Settings, engine: AsyncEngine, redis: Redis, pool: InferencePool,
    lm_pool: InferencePool, version: str | None = None, previous: Service | None = None,
    fail_open: FailOpen | None = None,
) -> Service:  # fmt: skip
    """Everything a request needs. With `previous` (a reload), its reason writer is kept and
    pointed at the new catalog: the LM is costly to load and a reload swaps the ranker."""
    bundle = load_bundle(bundle_path(settings, version))
    async with engine.connect() as conn:
        catalog = await load_catalog(conn, bundle.item_skus)
        countries = await conn.execute(
            select(app_user.c.country).union(select(item_popularity.c.country))
        )
        vocabulary = Vocabulary.of(
            {clean(c) for (c,) in countries if c and clean(c)},  # "*" (all shoppers) cleans to ""
            {clean(e.theme) for e in catalog.items if e is not None and e.theme and clean(e.theme)},
            [e.title for e in catalog.items if e is not None],
        )
    retriever = Retriever(bundle, catalog.new_items)
    recommender = Recommender(retriever, catalog)
    # Warm up: the first torch call pays for lazy initialisation; no request should.
    retriever.popular_in_country(None)
    await pool.run(retriever.score_session, catalog.indices(list(catalog.index_of)[:1]), None, 0)
    cache = Cache(
        redis, bundle.version, settings.list_cache_ttl_s, settings.reason_cache_ttl_s,
        settings.near_cache_ttl_s, fail_open,
    )  # fmt: skip
    logger.info("model %s loaded: %d items", bundle.version, len(catalog))
    batcher: Batcher[ScoreRequest, FloatArray] = Batcher(
        pool, lambda requests: list(retriever.score_requests(requests))
    )
    if previous is None:
        writer = await asyncio.to_thread(load_writer, settings, vocabulary, lm_pool)
    else:
        writer = previous.writer.for_vocabulary(vocabulary)
    return Service(
        bundle, catalog, recommender, engine, cache, pool, batcher, writer, vocabulary,
        settings.as_of, evidence.Locale(settings.currency, settings.locale),
        settings.session_gap_min, settings.cart_ttl_h,
    )  # fmt: skip


def load_writer(settings: Settings, vocabulary: Vocabulary, lm_pool: InferencePool) -> ReasonWriter:
    """The configured reason writer. A language model that cannot be loaded is logged and
    replaced by the template writer: reasons stay available, and true."""
    if settings.reason_writer == "template":
        return TemplateWriter()
    if settings.reason_writer == "openai":
        from app.reasons.openai_lm import OpenAIGenerator

        key = settings.reason_openai_api_key
        client = httpx.AsyncClient(
            base_url=settings.reason_openai_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {key.get_secret_value()}"} if key else {},
            timeout=settings.reason_timeout_s + settings.reason_late_s,
        )
        remote: Generator = OpenAIGenerator(
            client, settings.reason_openai_model, settings.reason_max_new_tokens
        )
        return LMWriter(remote, vocabulary, settings.reason_timeout_s, settings.reason_late_s)
    warning = None
    try:
        from app.reasons import local_lm

        adapter = local_lm.resolve_adapter(settings.reason_adapter, settings.models_dir)
        if adapter is None and settings.reason_adapter == "latest":
            warning = (
                f"no reason adapter under {settings.models_dir / 'reason_lm'}: the base model"
                " writes reasons, and the guard rejects most of them (their template is"
                " served); train one (python -m app train-reasons) or set RECS_REASON_ADAPTER"
            )
            logger.warning(warning)
        model, tokenizer, name = local_lm.load_lm(
            local_lm.resolve_model(settings.reason_model, settings.models_dir), adapter
        )
    except (local_lm.LMError, OSError, ValueError) as error:
        warning = f"the reason LM could not be loaded ({error}): template reasons are served"
        logger.error(warning)
        return TemplateWriter(warning)
    generator = local_lm.TransformersGenerator(
        model, tokenizer, name, lm_pool, settings.reason_max_new_tokens,
        max_time_s=settings.reason_timeout_s + settings.reason_late_s,
    )  # fmt: skip
    lm_pool.executor.submit(generator.warm_up, RecommendRequest().k).result()
    return LMWriter(
        generator, vocabulary, settings.reason_timeout_s, settings.reason_late_s, warning
    )
