"""API keys: who may write events and, when RECS_READ_REQUIRES_KEY is set, read.

Keys are random (`rr_` + 43 url-safe characters), shown once by `python -m app keys create`,
and stored only as SHA-256 hashes with their scopes. A request presents one as
`Authorization: Bearer <key>`. Each process remembers a lookup for 30 s, so a revoked key stops
working within that time.
"""

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Annotated, ClassVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.tables import api_key
from app.errors import NotReady, ProblemError

SCOPES = ("events:write", "read", "admin")  # admin may do everything
KEY_PREFIX = "rr_"
bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer rr_...`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class Unauthorized(ProblemError):
    status = HTTPStatus.UNAUTHORIZED
    kind = "unauthorized"
    headers: ClassVar[Mapping[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class Forbidden(ProblemError):
    status = HTTPStatus.FORBIDDEN
    kind = "forbidden"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    def __init__(self, engine: AsyncEngine, ttl_s: float = 30.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[float, frozenset[str] | None]] = {}

    async def scopes(self, key: str) -> frozenset[str] | None:
        """The key's scopes; None for an unknown or revoked key."""
        digest = hash_key(key)
        seen = self._seen.get(digest)
        if seen is not None and time.monotonic() - seen[0] < self.ttl_s:
            return seen[1]
        query = select(api_key.c.scopes).where(
            api_key.c.key_hash == digest, api_key.c.revoked_at.is_(None)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        scopes = None if row is None else frozenset(row[0])
        if len(self._seen) > 10_000:  # many made-up keys must not grow this without bound
            self._seen.clear()
        self._seen[digest] = (time.monotonic(), scopes)
        return scopes


def require(
    scope: str, only_if: Callable[[Settings], bool] = lambda _: True
) -> Callable[..., Awaitable[None]]:
    """A dependency: the request must present a key holding `scope` (or admin), when
    `only_if(settings)`."""

    async def check(request: Request, credentials: BearerDep) -> None:
        if not only_if(request.app.state.settings):
            return
        if credentials is None:
            raise Unauthorized("an API key is needed: Authorization: Bearer <key>")
        try:
            scopes = await request.app.state.keys.scopes(credentials.credentials)
        except SQLAlchemyError as error:
            raise NotReady("cannot check the API key now; see /readyz") from error
        if scopes is None:
            raise Unauthorized("unknown or revoked API key")
        if scope not in scopes and "admin" not in scopes:
            raise Forbidden(f"this key lacks the {scope} scope")

    return check


READS = require("read", only_if=lambda settings: settings.read_requires_key)
