"""Prometheus metrics, served at GET /metrics."""

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "reasonrec_request_seconds",
    "Request latency by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CACHE = Counter("reasonrec_cache_total", "Cache lookups by cache and result.", ["cache", "result"])
CACHE_ERRORS = Counter(
    "reasonrec_cache_errors_total", "Redis calls that failed (the service answered without them)."
)
GENERATIONS = Counter(
    "reasonrec_reasons_generated_total", "Reasons written, by writer.", ["writer"]
)
GUARD_REJECTIONS = Counter(
    "reasonrec_guard_rejections_total", "Generated reasons the guard refused to serve."
)
FALLBACKS = Counter(
    "reasonrec_fallbacks_total", "Answers served by a fallback path, by reason.", ["reason"]
)
EVENTS = Counter("reasonrec_events_total", "Events received, by outcome.", ["outcome"])
DATABASE_ERRORS = Counter(
    "reasonrec_database_errors_total", "Requests answered 503 because Postgres was unreachable."
)
MODEL_RELOADS = Counter(
    "reasonrec_model_reloads_total", "Ranker reloads in this process, by outcome.", ["outcome"]
)
