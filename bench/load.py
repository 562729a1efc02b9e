"""Load test: a real uvicorn on loopback with the real model, Postgres and Redis on the full data,
driven by wrk at 32 connections. Reference, measured in the same run: /healthz. Writes
bench/results/load.md.

    make bench-load        # installs wrk (Debian) when missing, then runs this

Scenarios (each URL list rotates over 300 of the most active shoppers):
- /healthz: the reference (no I/O);
- /v1/recommend, no reasons, list cache off: the full path every time (Postgres history, model);
- /v1/recommend, no reasons, cached: the same URLs with their lists in Redis;
- /v1/recommend?with_reasons=true, cached: the lists and reasons were computed before the run;
- /v1/explain, cached: each (shopper, item) explained once before the run.

Reasons are primed with the template writer: a cached answer costs the same whoever wrote it,
and the LM's own speed is measured by bench/reasons.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from app.config import PROJECT_ROOT, get_settings
from app.db.engine import libpq_url
from app.machine import describe_machine, now

RESULT = PROJECT_ROOT / "bench" / "results" / "load.md"
CONNECTIONS = 32
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
def server(port: int, **env: str) -> Iterator[str]:
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
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def active_shoppers() -> list[str]:
    with psycopg.connect(libpq_url(get_settings().database_url)) as conn:
        rows = conn.execute(
            "SELECT u.external_id FROM user_feature f JOIN app_user u ON u.id = f.user_id"
            " ORDER BY f.baskets DESC, u.external_id LIMIT %s",
            (SHOPPERS,),
        ).fetchall()
    return [row[0] for row in rows]


def wrk(base: str, paths: list[str], folder: Path) -> dict[str, Any]:
    urls = folder / "urls.txt"
    urls.write_text("\n".join(paths) + "\n")
    script = folder / "rotate.lua"
    script.write_text(LUA)
    before = server_side(base)
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: run `make bench-load` (apt-get install wrk)")
    output = subprocess.run(
        [binary, "-t2", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "-s", str(script), base],
        env={**os.environ, "URLS_FILE": str(urls)}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"^JSON (.*)$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    result: dict[str, Any] = json.loads(match.group(1))
    result["rps"] = result["requests"] / result["seconds"]
    after = server_side(base)
    result["server"] = {name: after[name] - before[name] for name in after}
    return result


def server_side(base: str) -> dict[str, float]:
    """What the server itself counted so far (all processes): requests, those it took over
    50 ms and over 0.5 s to answer, and Redis calls that failed. Set against wrk's figures,
    they tell a slow server from a client kept waiting elsewhere (a socket, a busy core)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    counts = dict.fromkeys(("requests", "within 50 ms", "within 0.5 s", "Redis failed"), 0.0)
    prefixes = {
        "reasonrec_request_seconds_count{": "requests",
        'reasonrec_request_seconds_bucket{le="0.05"': "within 50 ms",
        'reasonrec_request_seconds_bucket{le="0.5"': "within 0.5 s",
        "reasonrec_cache_errors_total ": "Redis failed",
    }
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
    recommend = [f"/v1/recommend?user_id={u}&k=10" for u in shoppers]
    with_reasons = [f"/v1/recommend?user_id={u}&k=10&with_reasons=true" for u in shoppers]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with server(8123, RECS_LIST_CACHE_TTL_S="0") as base:
            results["/healthz (reference)"] = wrk(base, ["/healthz"], folder)
            results["/v1/recommend, no reasons, uncached"] = wrk(base, recommend, folder)
        # Lists stay cached for the whole run: priming every list with its reasons takes minutes.
        with server(8124, RECS_LIST_CACHE_TTL_S="3600") as base:
            print(f"priming {len(with_reasons)} lists with reasons ...", flush=True)
            prime(base, with_reasons)
            explain = []
            with httpx.Client(base_url=base, timeout=60) as client:
                for path in with_reasons:
                    body = client.get(path).json()
                    item = body["items"][0]["item_id"]
                    explain.append(f"/v1/explain?user_id={body['user_id']}&item_id={item}")
            prime(base, explain)
            prime(base, recommend)
            results["/v1/recommend, no reasons, cached list"] = wrk(base, recommend, folder)
            results["/v1/recommend?with_reasons=true, cached"] = wrk(base, with_reasons, folder)
            results["/v1/explain, cached"] = wrk(base, explain, folder)
    write_report(results)


def server_row(name: str, result: dict[str, Any]) -> str:
    counts = result["server"]
    answered = counts["requests"]
    slow = answered - counts["within 50 ms"]
    return (
        f"| {name} | {answered:,.0f} | {slow:,.0f} ({slow / max(answered, 1):.2%}) |"
        f" {'yes' if slow <= 0.01 * answered else 'no'} |"
        f" {answered - counts['within 0.5 s']:,.0f} | {counts['Redis failed']:,.0f} |"
        f" {result['error_kinds']} |"
    )


def write_report(results: dict[str, dict[str, Any]]) -> None:
    reference = results["/healthz (reference)"]["rps"]
    rows = [
        f"| {name} | {r['rps']:,.0f} | {r['rps'] / reference:.0%} | {r['p50']:.1f} |"
        f" {r['p95']:.1f} | {r['p99']:.1f} | {r['errors']:.0f} |"
        for name, r in results.items()
    ]
    explain = results["/v1/explain, cached"]
    checks = [("cached /explain p99 <= 20 ms", explain["p99"] <= 20)]
    for variant in ("uncached", "cached list"):
        r = results[f"/v1/recommend, no reasons, {variant}"]
        checks += [
            (f"/recommend ({variant}) throughput >= 40% of /healthz", r["rps"] / reference >= 0.4),
            (f"/recommend ({variant}) p99 <= 50 ms", r["p99"] <= 50),
        ]
    report = "\n".join(
        [
            "# Load: real uvicorn, real model, Postgres and Redis on the full data",
            "",
            f"- Machine: {describe_machine()} (wrk and the server share it)",
            f"- Date: {now()}",
            "- Command: `make bench-load` (`.venv/bin/python -m bench.load`)",
            f"- wrk, 2 threads, {CONNECTIONS} connections, {DURATION_S} s per scenario; {WORKERS}"
            " uvicorn workers (RECS_WORKERS, one per core); URLs rotate over the 300 shoppers"
            " with the most orders. Lists stay cached for the run (RECS_LIST_CACHE_TTL_S=3600);"
            " each process keeps answers in memory for 2 s in front of Redis (the near cache).",
            "",
            "| scenario | requests/s | vs /healthz | p50 ms | p95 ms | p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            *(f"- {name}: **{'met' if ok else 'NOT met'}**" for name, ok in checks),
            "",
            "What the server counted in each scenario (its own time per request, from"
            " /metrics; wrk's adds the wait for a socket and a core), and wrk's errors (non-2xx"
            " status, connect, read, write, timeout after 2 s):",
            "",
            "| scenario | answered | over 50 ms | server's p99 <= 50 ms | over 0.5 s |"
            " Redis calls failed | wrk errors |",
            "| --- | ---: | ---: | --- | ---: | ---: | --- |",
            *(server_row(name, r) for name, r in results.items()),
            "",
        ]
    )
    RESULT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
