"""What /v1 routes answer: the documented error responses (all problem+json), and cached bodies."""

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from app.errors import Problem

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request could not be read."},
    401: {
        "model": Problem,
        "description": "No valid API key (writes always need one; reads"
        " when RECS_READ_REQUIRES_KEY is set).",
    },
    403: {"model": Problem, "description": "The API key lacks the scope this needs."},
    404: {"model": Problem, "description": "An item or route that does not exist."},
    413: {"model": Problem, "description": "The body is over RECS_MAX_BODY_BYTES."},
    422: {"model": Problem, "description": "The request is not valid (the fields say why)."},
    429: {"model": Problem, "description": "Over the client's rate limit; see Retry-After."},
    503: {"model": Problem, "description": "Not ready or overloaded; see Retry-After."},
}


def respond(result: BaseModel | bytes) -> Response | Any:
    """A cached body (already JSON, as served) goes out untouched; a model goes through FastAPI's
    response_model serialisation as usual."""
    if isinstance(result, bytes):
        return Response(result, media_type="application/json")
    return result
