"""The OpenAPI document /docs shows: tag descriptions, error bodies as application/problem+json,
and examples captured from the real data (app/api/examples.json, `python -m
bench.openapi_examples` against `make run`)."""

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.errors import PROBLEM_MEDIA_TYPE

EXAMPLES = Path(__file__).resolve().parent / "api" / "examples.json"
TAGS = [
    {"name": "recommend", "description": "Ranked items for a shopper or a session, optionally"
     " each with a reason and the evidence behind it."},
    {"name": "explain", "description": "Why one item is recommended to one shopper."},
    {"name": "items", "description": "The catalogue: one item, and the items like it."},
    {"name": "shoppers", "description": "What a shopper bought and has in the cart."},
    {"name": "events", "description": "Views, clicks, carts and purchases, stored once each"
     " (client event ids); the shopper's next recommendations reflect them."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "admin", "description": "Operating a running service (a key with the admin"
     " scope): ranker versions, and switching to another without a restart."},
]  # fmt: skip
KEYED_TAGS = {"events", "admin"}  # always need a key; the other routes only when configured
OTHER_PROBLEMS: dict[str, dict[str, Any]] = {
    "400": {"type": "urn:reasonrec:problem:malformed-body", "title": "Bad Request",
            "status": 400, "detail": "The body is not valid JSON.", "instance": "/v1/recommend",
            "errors": [{"loc": ["body", 1], "msg": "JSON decode error", "type": "json_invalid"}]},
    "401": {"type": "urn:reasonrec:problem:unauthorized", "title": "Unauthorized", "status": 401,
            "detail": "an API key is needed: Authorization: Bearer <key>",
            "instance": "/v1/events"},
    "403": {"type": "urn:reasonrec:problem:forbidden", "title": "Forbidden", "status": 403,
            "detail": "this key lacks the events:write scope", "instance": "/v1/events"},
    "413": {"type": "urn:reasonrec:problem:body-too-large", "title": "Request Entity Too Large",
            "status": 413, "detail": "the body is over 1048576 bytes", "instance": "/v1/events"},
    "429": {"type": "urn:reasonrec:problem:rate-limited", "title": "Too Many Requests",
            "status": 429, "detail": "over 6000 requests a minute from 203.0.113.7; see"
            " Retry-After", "instance": "/v1/recommend"},
    "503": {"type": "urn:reasonrec:problem:overloaded", "title": "Service Unavailable",
            "status": 503, "detail": "all 64 inference slots are busy; retry shortly",
            "instance": "/v1/recommend"},
}  # fmt: skip


def install_openapi(app: FastAPI) -> None:
    """/openapi.json, and the explorers /docs (Swagger UI) and /redoc with their assets served
    by the app: they work where the browser cannot reach a CDN. Create the app with
    docs_url=None and redoc_url=None."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    assets = str(files("fastapi_offline") / "static")
    app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json", title=f"{app.title} API",
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/docs/assets/favicon.png", with_google_fonts=False,
        )  # fmt: skip


def document(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary,
        description=app.description, routes=app.routes, tags=TAGS,
    )  # fmt: skip
    reads_open = not app.state.settings.read_requires_key
    examples = json.loads(EXAMPLES.read_text()) if EXAMPLES.exists() else {}
    problems = {**OTHER_PROBLEMS, **examples.get("problems", {})}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            captured = examples.get(f"{method.upper()} {path}", {})
            keyed = KEYED_TAGS & set(operation.get("tags", []))
            if reads_open and not keyed and "security" in operation:
                operation["security"] = [{}, *operation["security"]]  # a key is optional
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and "request" in captured:
                body["example"] = captured["request"]
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and "application/json" in content:
                    # Every error body is a problem document (RFC 9457), as served.
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
                    if status in problems:
                        content[PROBLEM_MEDIA_TYPE]["example"] = problems[status]
                elif status == "200" and "response" in captured and "application/json" in content:
                    content["application/json"]["example"] = captured["response"]
    return schema
