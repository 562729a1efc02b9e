"""How `python -m app serve` runs the app: one process, or (RECS_WORKERS > 1) worker processes,
each on a socket of its own.

Every worker binds the same address with SO_REUSEPORT, so the kernel spreads new connections
over them by a hash of the connection. uvicorn's own workers share one listening socket instead:
whichever worker is awake when a burst of connections arrives accepts them all. Measured here
with wrk's 32 connections: splits such as 4/28, and now and then all 32 on one worker, which then
leaves the other core idle and halves the throughput (bench/results/load.md).

The parent only supervises: a worker that exits is started again; SIGTERM or SIGINT stops them
all (each finishes its requests first, as uvicorn does).
"""

import logging
import multiprocessing
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from app.observability import configure_logging

logger = logging.getLogger(__name__)
STOP_GRACE_S = 30  # how long a worker may take to finish its requests when stopped
RESTART_PAUSE_S = 1.0  # between a worker's exit and its replacement, so a crash loop is slow


@dataclass(frozen=True)
class WorkerConfig:
    host: str
    port: int
    log_level: str


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """Bound, not listening: until it listens, the kernel sends it no connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def uvicorn_config(config: WorkerConfig) -> uvicorn.Config:
    """The app as every server process runs it (our JSON logs, no uvicorn access log)."""
    return uvicorn.Config(
        "app.main:create_app", factory=True, host=config.host, port=config.port,
        log_level=config.log_level, log_config=None, access_log=False,
    )  # fmt: skip


def run_worker(config: WorkerConfig) -> None:
    """One worker: its own socket, the app, uvicorn's graceful shutdown on SIGTERM/SIGINT.
    uvicorn listens on the socket only once the app has started (model loaded), so a worker
    starting again takes no connections before it can answer them."""
    configure_logging(config.log_level)
    sock = reuse_port_socket(config.host, config.port)
    uvicorn.Server(uvicorn_config(config)).run(sockets=[sock])


def serve_workers(workers: int, config: WorkerConfig) -> None:
    """Run `workers` worker processes until SIGTERM or SIGINT."""
    # Fail at once, here, if the address is taken. (One taken by another reasonrec server,
    # whose sockets share too, is shared with it: run each on a port of its own.)
    try:
        reuse_port_socket(config.host, config.port).close()
    except OSError as error:
        raise SystemExit(f"cannot serve on {config.host}:{config.port}: {error}") from None
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch state forked

    def start() -> BaseProcess:
        process = spawn.Process(target=run_worker, args=(config,), name="reasonrec-worker")
        process.start()
        return process

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes = [start() for _ in range(workers)]
    logger.info("serving on %s:%d with %d workers", config.host, config.port, workers)
    while not stopping:
        for n, process in enumerate(processes):
            if not process.is_alive() and not stopping:
                logger.warning("worker %s exited (%s); starting another", process.pid,
                               process.exitcode)  # fmt: skip
                time.sleep(RESTART_PAUSE_S)
                processes[n] = start()
        time.sleep(0.2)
    for process in processes:
        process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
    deadline = time.monotonic() + STOP_GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
