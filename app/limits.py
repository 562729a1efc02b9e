"""Request limits, enforced before routing: body size (413) and a per-client rate (429).

The rate is counted in Redis, per client and per minute, so every process and replica shares
one budget. A request with a valid API key is counted against that key, with its own (larger)
budget: a storefront's backend serves many shoppers from one address. Anything else, a made-up
key included, is counted against its IP address. When Redis
cannot be reached the request is let through and counted: a cache outage must not become an
outage of the API.
"""

import time

from redis.asyncio import Redis
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import KeyStore, hash_key
from app.cache import PREFIX, FailOpen
from app.errors import problem_response

LIMITED_PREFIX = "/v1/"  # probes, metrics, the demo page and the docs are not counted


class BodyTooLarge(HTTPException):
    """Raised while the body streams in. An HTTPException, so that FastAPI, reading the body,
    passes it on to the problem+json handler instead of calling it a parse error (400)."""

    kind = "body-too-large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the body is over {max_bytes} bytes")


class BodyLimit:
    """413 for a body over `max_bytes`: by its Content-Length up front, or while it streams."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the body is over {self.max_bytes} bytes"
        response = problem_response(Request(scope, receive), 413, detail, "body-too-large")
        await response(scope, receive, send)


class RateLimit:
    """429 + Retry-After once a client has made its budget of /v1 requests this minute:
    `per_key` for a valid API key, `per_ip` for an address."""

    def __init__(self, app: ASGIApp, per_ip: int, per_key: int) -> None:
        self.app = app
        self.per_ip = per_ip
        self.per_key = per_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        off = self.per_ip <= 0 and self.per_key <= 0
        if off or scope["type"] != "http" or not path.startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        key = await self._valid_key(state, Request(scope))
        client = scope.get("client")
        address = client[0] if client else "?"
        who, budget = (f"key:{key[:16]}", self.per_key) if key else (address, self.per_ip)
        if budget <= 0:
            await self.app(scope, receive, send)
            return
        now = time.time()
        minute = int(now // 60)
        count = await self._count(state, f"{PREFIX}:rate:{who}:{minute}")
        if count is not None and count > budget:
            retry_after = str(max(1, 60 * (minute + 1) - int(now)))
            whose = "this API key" if key else who
            response = problem_response(
                Request(scope, receive), 429,
                f"over {budget} requests a minute from {whose}; see Retry-After",
                "rate-limited", headers={"Retry-After": retry_after},
            )  # fmt: skip
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _valid_key(state: State, request: Request) -> str | None:
        """The hash of the request's API key if the key is valid (known, not revoked)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        keys: KeyStore | None = getattr(state, "keys", None)
        if scheme.lower() != "bearer" or not token or keys is None:
            return None
        try:
            scopes = await keys.scopes(token)
        except SQLAlchemyError:  # Postgres down: count it by address meanwhile
            return None
        return hash_key(token) if scopes is not None else None

    @staticmethod
    async def _count(state: State, key: str) -> int | None:
        """This minute's count so far, this request included; None without Redis."""
        redis: Redis | None = getattr(state, "redis", None)  # both set by the lifespan
        fail_open: FailOpen | None = getattr(state, "fail_open", None)
        if redis is None or fail_open is None:
            return None
        pipe = redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120, nx=True)
        counted = await fail_open(pipe.execute())
        return None if counted is None else int(counted[0])
