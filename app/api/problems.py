"""The error responses every /v1 route documents in OpenAPI (all problem+json)."""

from typing import Any

from app.errors import Problem

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request could not be read."},
    404: {"model": Problem, "description": "An item or route that does not exist."},
    409: {"model": Problem, "description": "The request conflicts with the current state."},
    422: {"model": Problem, "description": "The request is not valid (the fields say why)."},
    429: {"model": Problem, "description": "Too many requests; see Retry-After."},
    503: {"model": Problem, "description": "Not ready or overloaded; see Retry-After."},
}
