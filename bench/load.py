"""Load test: a real uvicorn on loopback with the real model, Postgres and Redis on the full data,
driven by wrk at 32 connections. Reference, measured in the same run: /healthz. Writes
bench/results/load.md.

    make bench-load        # installs wrk (Debian) when missing, then runs this

Scenarios (each URL list rotates over 300 of the most active shoppers):
- /healthz: the reference (no I/O);
- /v1/recommend, no reasons, as served: the service's own settings (lists cached for
  RECS_LIST_CACHE_TTL_S, 300 s, in Redis and for 2 s in each process), starting cold: each
  shopper's first request of the run computes their list;
- /v1/recommend?with_reasons=true, cached: the reasons were written before the run;
- /v1/explain, cached: each (shopper, item) explained once before the run;
- /v1/recommend, no reasons, list cache off: the full path every time (Postgres history, model).

For each scenario the report also gives what the server counted (its own latency, cache hits,
Redis failures) and the CPU each request cost, per process kind, read from /proc: that is what
bounds a rate on two shared cores.

Reasons are primed with the template writer: a cached answer costs the same whoever wrote it,
and the LM's own speed is measured by bench/reasons.py.
"""

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg

from app.config import PROJECT_ROOT, get_settings
from app.db.engine import libpq_url
from app.machine import describe_machine, now
from bench.faults import RedisServer

RESULT = PROJECT_ROOT / "bench" / "results" / "load.md"
CONNECTIONS = 32
# One wrk thread drives more than /healthz's rate. A second only adds a runnable thread on the
# shared cores, and Redis then waits for a core: measured here, the as-served list's p99 went
# 16-191 ms with two threads against 15-26 ms with one, and /healthz 13.0k against 13.9k req/s.
WRK_THREADS = 1
DURATION_S = int(os.environ.get("BENCH_LOAD_SECONDS", "20"))
SHOPPERS = 300
WORKERS = os.cpu_count() or 1  # uvicorn processes: one per core, as deployed
AS_OF = "2011-12-10T00:00:00Z"

# wrk: rotate over the URLs in the file named by URLS_FILE; report percentiles as JSON at the end.
LUA = """
local urls = {}
for line in io.lines(os.getenv("URLS_FILE")) do urls[#urls + 1] = line end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", urls[(n % #urls) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.3f, "errors": %d, "error_kinds": "status %d, connect %d, read %d, write %d, timeout %d", "p50": %.3f, "p95": %.3f, "p99": %.3f}\\n',
    summary.requests, summary.duration / 1e6, errors, e.status, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
"""


@contextmanager
def server(port: int, **env: str) -> Iterator[tuple[str, int]]:
    """The base URL and the server's process id (its workers are its children)."""
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        env={
            **os.environ, "RECS_AS_OF": AS_OF, "RECS_LOG_LEVEL": "warning",
            "RECS_WORKERS": str(WORKERS), "RECS_REASON_WRITER": "template",
            "RECS_RATE_LIMIT_PER_MINUTE": "0", **env,  # one wrk client: measure serving
        },
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    try:
        # Ready many times in a row: each worker loads the model, and any may answer.
        ready_in_a_row, deadline = 0, time.monotonic() + 120
        while ready_in_a_row < 20 and time.monotonic() < deadline:
            try:
                ok = httpx.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready_in_a_row = ready_in_a_row + 1 if ok else 0
            time.sleep(0 if ok else 0.5)
        if ready_in_a_row < 20:
            raise RuntimeError("the server did not become ready in 120 s")
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the server's processes, Postgres's and
    Redis's. The server's workers are its children; wrk's share is read by the caller."""
    tick = os.sysconf("SC_CLK_TCK")
    used = dict.fromkeys(("server", "postgres", "redis"), 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, parent = int(entry.name), int(fields[1])
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if server_pid in (pid, parent):
            used["server"] += seconds
        elif name == "postgres":
            used["postgres"] += seconds
        elif name == "redis-server":
            used["redis"] += seconds
    return used


def active_shoppers() -> list[str]:
    with psycopg.connect(libpq_url(get_settings().database_url)) as conn:
        rows = conn.execute(
            "SELECT u.external_id FROM user_feature f JOIN app_user u ON u.id = f.user_id"
            " ORDER BY f.baskets DESC, u.external_id LIMIT %s",
            (SHOPPERS,),
        ).fetchall()
    return [row[0] for row in rows]


def wrk(
    base: str, server_pid: int, paths: list[str], folder: Path, seconds: int = DURATION_S
) -> dict[str, Any]:
    urls = folder / "urls.txt"
    urls.write_text("\n".join(paths) + "\n")
    script = folder / "rotate.lua"
    script.write_text(LUA)
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: run `make bench-load` (apt-get install wrk)")
    before, cpu_before = server_side(base), cpu_seconds(server_pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(
        [binary, f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script),
         base],
        env={**os.environ, "URLS_FILE": str(urls)}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_after, after = cpu_seconds(server_pid), server_side(base)
    match = re.search(r"^JSON (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["rps"] = result["requests"] / result["seconds"]
    result["server"] = {name: after[name] - before[name] for name in after}
    result["cpu"] = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    result["cpu"]["wrk"] = (after_children.ru_utime + after_children.ru_stime) - (
        children.ru_utime + children.ru_stime
    )
    return result


def server_side(base: str) -> dict[str, float]:
    """What the server itself counted so far (all processes): requests, those it took over
    50 ms and over 0.5 s to answer, Redis calls that failed, and list lookups by result. Set
    against wrk's figures, they tell a slow server from a client kept waiting elsewhere (a
    socket, a busy core)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    prefixes = {
        "reasonrec_request_seconds_count{": "requests",
        'reasonrec_request_seconds_bucket{le="0.05"': "within 50 ms",
        'reasonrec_request_seconds_bucket{le="0.5"': "within 0.5 s",
        "reasonrec_cache_errors_total ": "Redis failed",
        'reasonrec_cache_total{cache="lists",result="near_hit"}': "list hits",
        'reasonrec_cache_total{cache="lists",result="hit"}': "list hits",
        'reasonrec_cache_total{cache="lists",result="miss"}': "list misses",
    }
    counts = dict.fromkeys(prefixes.values(), 0.0)
    for line in text.splitlines():
        for prefix, name in prefixes.items():
            if line.startswith(prefix):
                counts[name] += float(line.rsplit(" ", 1)[1])
    return counts


def prime(base: str, paths: list[str]) -> None:
    """Compute once what the cached scenarios will read."""
    with httpx.Client(base_url=base, timeout=60) as client:
        for path in paths:
            client.get(path).raise_for_status()


def main() -> None:
    shoppers = active_shoppers()
    recommend = [f"/v1/recommend?{urlencode({'user_id': u, 'k': 10})}" for u in shoppers]
    with_reasons = [
        f"/v1/recommend?{urlencode({'user_id': u, 'k': 10, 'with_reasons': 'true'})}"
        for u in shoppers
    ]
    results: dict[str, dict[str, Any]] = {}
    # A Redis of the run's own: the as-served run starts with nothing cached, and the machine's
    # Redis keeps what it holds.
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis:
        folder = Path(tmp)
        with server(8123, RECS_REDIS_URL=redis.url) as (base, pid):
            results[HEALTHZ] = wrk(base, pid, ["/healthz"], folder)
            # From cold, each shopper's first request computes their list; then all are cached.
            results[AS_SERVED_COLD] = wrk(base, pid, recommend, folder, seconds=COLD_S)
            results[AS_SERVED] = wrk(base, pid, recommend, folder)
            print(f"priming {len(with_reasons)} lists with reasons ...", flush=True)
            prime(base, with_reasons)
            explain = []
            with httpx.Client(base_url=base, timeout=60) as client:
                for path in with_reasons:
                    body = client.get(path).json()
                    item = body["items"][0]["item_id"]
                    query = urlencode({"user_id": body["user_id"], "item_id": item})
                    explain.append(f"/v1/explain?{query}")
            prime(base, explain)
            results["/v1/recommend?with_reasons=true, cached"] = wrk(
                base, pid, with_reasons, folder
            )
            results[EXPLAIN] = wrk(base, pid, explain, folder)
        with server(8124, RECS_REDIS_URL=redis.url, RECS_LIST_CACHE_TTL_S="0") as (base, pid):
            results[UNCACHED] = wrk(base, pid, recommend, folder)
    write_report(results)


HEALTHZ = "/healthz (reference)"
COLD_S = 5
AS_SERVED_COLD = f"/v1/recommend, no reasons, as served: its first {COLD_S} s, from cold"
AS_SERVED = f"/v1/recommend, no reasons, as served: the next {DURATION_S} s"
EXPLAIN = "/v1/explain, cached"
UNCACHED = "/v1/recommend, no reasons, list cache off"


def server_row(name: str, result: dict[str, Any]) -> str:
    counts = result["server"]
    answered = counts["requests"]
    slow = answered - counts["within 50 ms"]
    lookups = counts["list hits"] + counts["list misses"]
    from_cache = f"{counts['list hits'] / lookups:.2%}" if lookups else "-"
    return (
        f"| {name} | {answered:,.0f} | {slow:,.0f} ({slow / max(answered, 1):.2%}) |"
        f" {'yes' if slow <= 0.01 * answered else 'no'} |"
        f" {answered - counts['within 0.5 s']:,.0f} | {counts['Redis failed']:,.0f} |"
        f" {from_cache} | {result['error_kinds']} |"
    )


def cpu_per_request(result: dict[str, Any]) -> float:
    """Milliseconds of CPU one request cost, every process on the machine that served it."""
    return float(1000 * sum(result["cpu"].values()) / max(result["requests"], 1))


def cpu_row(name: str, result: dict[str, Any]) -> str:
    per = {kind: 1000 * used / max(result["requests"], 1) for kind, used in result["cpu"].items()}
    busy = sum(result["cpu"].values()) / result["seconds"]
    return (
        f"| {name} | {per['server']:.3f} | {per['postgres']:.3f} | {per['redis']:.3f} |"
        f" {per['wrk']:.3f} | {cpu_per_request(result):.3f} | {busy:.2f} |"
    )


def write_report(results: dict[str, dict[str, Any]]) -> None:
    reference = results[HEALTHZ]["rps"]
    rows = [
        f"| {name} | {r['rps']:,.0f} | {r['rps'] / reference:.0%} | {r['p50']:.1f} |"
        f" {r['p95']:.1f} | {r['p99']:.1f} | {r['errors']:.0f} |"
        for name, r in results.items()
    ]
    served, uncached = results[AS_SERVED], results[UNCACHED]
    checks = [
        ("/recommend (as served) throughput >= 40% of /healthz", served["rps"] >= 0.4 * reference),
        ("/recommend (as served) p99 <= 50 ms", served["p99"] <= 50),
        ("cached /explain p99 <= 20 ms", results[EXPLAIN]["p99"] <= 20),
        ("/recommend (list cache off) throughput >= 40% of /healthz",
         uncached["rps"] >= 0.4 * reference),
        ("/recommend (list cache off) p99 <= 50 ms", uncached["p99"] <= 50),
    ]  # fmt: skip
    cores = os.cpu_count() or 1
    # The CPU one request may cost for the machine to serve 40% of /healthz's rate.
    budget = 1000 * cores / (0.4 * reference)
    bound = (
        f"- Why the list cache off cannot reach 40% here: each such request cost"
        f" {cpu_per_request(uncached):.2f} ms of CPU on this machine (below), against"
        f" {cpu_per_request(results[HEALTHZ]):.3f} ms for /healthz. At 40% of /healthz's rate,"
        f" {cores} cores leave {budget:.2f} ms a request, {cpu_per_request(uncached) / budget:.1f}x"
        " less than it takes; its p99 follows, since 32 connections kept busy wait"
        f" 32 / rate = {1000 * CONNECTIONS / uncached['rps']:.0f} ms a request on average."
    )
    report = "\n".join(
        [
            "# Load: real uvicorn, real model, Postgres and Redis on the full data",
            "",
            f"- Machine: {describe_machine()} (wrk and the server share it)",
            f"- Date: {now()}",
            "- Command: `make bench-load` (`.venv/bin/python -m bench.load`)",
            f"- wrk, {WRK_THREADS} thread, {CONNECTIONS} connections, {DURATION_S} s per scenario;"
            f" {WORKERS} uvicorn workers (RECS_WORKERS, one per core); URLs rotate over the 300"
            " shoppers with the most orders. Every other setting is the service's default: lists"
            " cached 300 s in Redis and 2 s in each process (the near cache), reasons 7 days. Redis"
            " is a fresh redis-server of the run's own, so the as-served run starts with no list"
            f" cached: in its first {COLD_S} s each shopper's first request computes theirs (a"
            " row of its own), and the targets are checked on the next run, on the same server. The last scenario runs a second server"
            " with RECS_LIST_CACHE_TTL_S=0: every request reads Postgres and runs the model.",
            "",
            "| scenario | requests/s | vs /healthz | p50 ms | p95 ms | p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            *(f"- {name}: **{'met' if ok else 'NOT met'}**" for name, ok in checks),
            bound,
            "",
            "What the server counted in each scenario (its own time per request, from"
            " /metrics; wrk's adds the wait for a socket and a core), the share of list lookups"
            " answered from the cache (near or Redis), and wrk's errors (non-2xx status, connect,"
            " read, write, timeout after 2 s):",
            "",
            "| scenario | answered | over 50 ms | server's p99 <= 50 ms | over 0.5 s |"
            " Redis calls failed | lists from cache | wrk errors |",
            "| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |",
            *(server_row(name, r) for name, r in results.items()),
            "",
            "CPU per request, ms (user + system, from /proc over each scenario; the server is"
            " its processes, all workers; cores busy = all of it over the run's seconds):",
            "",
            "| scenario | server | Postgres | Redis | wrk | all | cores busy |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(cpu_row(name, r) for name, r in results.items()),
            "",
        ]
    )
    RESULT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
