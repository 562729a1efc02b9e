"""The FastAPI application factory."""

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.api import admin, demo, events, explain, health, items, metrics, recommend, shoppers
from app.config import Settings, get_settings
from app.errors import install_error_handlers
from app.lifespan import lifespan
from app.limits import BodyLimit, RateLimit
from app.observability import RequestContext
from app.openapi import install_openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="reasonrec",
        version=__version__,
        summary="Recommendations with short, personal, true reasons.",
        description="Each recommended item can carry a one-sentence reason and the evidence it"
        " rests on (the shopper's own purchases, co-purchase rates, themes, prices, popularity"
        " in their country). Reasons come from a fine-tuned language model and are checked"
        " against that evidence; a reason that fails the check is replaced by a template"
        " sentence. Errors are application/problem+json. A storefront demo is at /demo.",
        lifespan=lifespan,
        docs_url=None,  # served by install_openapi, with local assets
        redoc_url=None,
    )
    install_openapi(app)
    app.state.settings = settings or get_settings()
    install_error_handlers(app)
    # Added last = outermost: every answer, a 413 or 429 too, gets a request id and is measured.
    app.add_middleware(BodyLimit, max_bytes=app.state.settings.max_body_bytes)
    app.add_middleware(
        RateLimit, per_ip=app.state.settings.rate_limit_per_minute,
        per_key=app.state.settings.key_rate_limit_per_minute,
    )  # fmt: skip
    if app.state.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=app.state.settings.cors_origins,
            allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"], max_age=600,
        )  # fmt: skip
    app.add_middleware(RequestContext)
    routers = [
        m.router for m in (health, metrics, recommend, explain, items, shoppers, events, admin)
    ]
    for router in routers:
        app.include_router(router)
    # What a 405's Allow header lists (app/errors.py).
    app.state.api_routes = [route for router in routers for route in router.routes]
    if app.state.settings.demo:
        app.include_router(demo.router)
        app.mount("/demo/assets", demo.assets, name="demo-assets")
    return app
