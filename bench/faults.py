"""Faults to inject, for the reliability tests and bench/soak.py: a Redis server of our own to
stop and start again, and a TCP proxy in front of Postgres to cut or stall. The shared Redis
and Postgres of the machine are never touched."""

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

from redis import Redis
from redis.exceptions import RedisError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Fault:
    """`with` starts it, and stops it whatever happened meanwhile."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(Fault):
    """A throwaway redis-server on a free port; stop() and start() it mid-run."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self._process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()  # as a crash would: no goodbye to the clients
            self._process.wait(timeout=10)
            self._process = None


class TcpProxy(Fault):
    """127.0.0.1:<port> forwarded to target, run on its own thread. cut(): every connection
    closed and new ones refused (the server is down); cut(stall=True): new connections are
    accepted and never answered (a silent network); restore(): forwarding again."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stalled = False

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self._stalled:
            return  # held open, never answered
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(upstream_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    async def _cut(self, stall: bool) -> None:
        if self._server is not None and not stall:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._stalled = stall

    async def _restore(self) -> None:
        self._stalled = False
        if self._server is None:
            await self._listen()

    def start(self) -> None:
        self._thread.start()
        self._call(self._listen())

    def cut(self, stall: bool = False) -> None:
        self._call(self._cut(stall))

    def restore(self) -> None:
        self._call(self._restore())

    def stop(self) -> None:
        self._call(self._cut(stall=False))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
