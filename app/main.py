"""The FastAPI application factory."""

from fastapi import FastAPI

from app import __version__
from app.api import demo, events, explain, health, items, metrics, recommend, shoppers
from app.config import Settings, get_settings
from app.errors import install_error_handlers
from app.lifespan import lifespan
from app.observability import RequestContext


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="reasonrec",
        version=__version__,
        summary="Recommendations with short, personal, true reasons.",
        lifespan=lifespan,
    )
    app.state.settings = settings or get_settings()
    install_error_handlers(app)
    app.add_middleware(RequestContext)
    for module in (health, metrics, recommend, explain, items, shoppers, events, demo):
        app.include_router(module.router)
    app.mount("/demo/assets", demo.assets, name="demo-assets")
    return app
