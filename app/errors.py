"""One error envelope for every error: application/problem+json (RFC 9457). No tracebacks leak."""

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.metrics import DATABASE_ERRORS

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """The body of every error response."""

    type: str = Field("about:blank", description="URI naming the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code.")
    detail: str | None = Field(None, description="What went wrong in this request.")
    instance: str | None = Field(None, description="The request path.")


class ProblemError(Exception):
    """A domain error the API answers with a problem+json body. Subclasses set the fields."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    kind = "internal-error"
    headers: ClassVar[Mapping[str, str] | None] = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotReady(ProblemError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    kind = "not-ready"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "5"}


class Overloaded(ProblemError):
    """Every inference slot is taken: shed load early instead of queueing without bound."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    kind = "overloaded"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "1"}


class DatabaseUnavailable(ProblemError):
    """Postgres cannot be reached (or answers too slowly): answer at once, don't hang."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    kind = "database-unavailable"
    headers: ClassVar[Mapping[str, str] | None] = {"Retry-After": "5"}


class NotFound(ProblemError):
    status = HTTPStatus.NOT_FOUND
    kind = "not-found"


class Conflict(ProblemError):
    """The request contradicts what is stored (an event_id reused for a different event)."""

    status = HTTPStatus.CONFLICT
    kind = "conflict"


class InvalidRequest(ProblemError):
    """Well-formed but unusable input (e.g. unknown item ids in an event batch)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    kind = "invalid-request"


def problem_response(
    request: Request,
    status: int,
    detail: str | None,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        type=f"urn:reasonrec:problem:{kind}" if kind else "about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
    ).model_dump()
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request, exc.status, exc.detail, exc.kind, headers=exc.headers, **exc.extra
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    kind = getattr(exc, "kind", None)  # set by our own subclasses (app/limits.py)
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names only the first route on this path; GET and POST /v1/recommend are two.
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return problem_response(request, exc.status_code, detail, kind, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    path = request.url.path
    return sorted(
        {m for route in request.app.state.api_routes if route.path_regex.match(path)
         for m in route.methods}
    )  # fmt: skip


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Echo where and why, never the input itself: it may be huge or hostile.
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]
    if any(error["type"] == "json_invalid" for error in errors):
        # Not JSON at all: the body could not be read, which is a 400, not a field error.
        return problem_response(
            request, 400, "The body is not valid JSON.", "malformed-body", errors=errors
        )
    return problem_response(
        request, 422, "The request is not valid.", "validation-error", errors=errors
    )


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    # A lost or refused connection, or no pooled connection free in time: Postgres is down or
    # out of reach. The pool's pre-ping replaces dead connections once it is back.
    DATABASE_ERRORS.inc()
    logger.warning("postgres unavailable on %s: %s", request.url.path, exc.__class__.__name__)
    return await _on_problem(request, DatabaseUnavailable("the database is unavailable; retry"))


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "An unexpected error occurred.", "internal-error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    for error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(error, _on_database_error)
    app.add_exception_handler(Exception, _on_unexpected)
