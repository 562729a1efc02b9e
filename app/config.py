"""All configuration, read once from the environment (prefix RECS_) or a .env file."""

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Where item themes come from (app/features/themes.py).
ThemeChoice = Literal["auto", "category", "learned", "none", "uk-gift"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECS_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = Field(
        "dev", description="Deployment environment: dev, test or prod."
    )
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/reasonrec",
        description="SQLAlchemy URL of the Postgres database (psycopg 3 driver).",
    )
    database_timeout_s: int = Field(
        2, ge=2, le=60,
        description="Longest wait for a Postgres connection (to open one, or a free one from the"
        " pool); past it, requests get 503 + Retry-After instead of hanging.",
    )  # fmt: skip
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL for the cache.")
    data_dir: Path = Field(
        PROJECT_ROOT.parent / "shared" / "data",
        description="Folder `python -m app ingest` loads when given no paths (as `make run` does).",
    )
    models_dir: Path = Field(
        PROJECT_ROOT / "models",
        description="Where model bundles are written and read (two_tower/<version>/).",
    )
    model_version: str = Field(
        "",
        description="Ranker version to serve (a folder under models/two_tower/); empty = the"
        " newest. POST /v1/admin/reload switches a running service.",
    )
    host: str = Field("127.0.0.1", description="Address `python -m app serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `python -m app serve` listens on.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the service."
    )
    as_of: datetime | None = Field(
        None,
        description="The time the service treats as now (recency features, new events); unset ="
        " the wall clock. `make run` sets the end of the demo data, 2011-12-10.",
    )
    currency: str | None = Field(
        None, min_length=3, max_length=3, pattern=r"^[A-Z]{3}$",
        description="The shop's currency, an ISO 4217 code (GBP, USD, EUR); amounts in reasons"
        " and evidence are formatted with it by Babel. Unset: amounts without a currency."
        " `make run` sets GBP for the demo shop.",
    )  # fmt: skip
    locale: str = Field(
        "en", min_length=2, max_length=16, pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
        description="Language and region amounts and months are written in (Babel locale:"
        " en, en_GB, de_DE). `make run` sets en_GB.",
    )  # fmt: skip
    timezone: str = Field(
        "UTC", min_length=1, max_length=64,
        description="IANA time zone (Europe/Berlin, America/New_York) of times the ingest reads"
        " without a zone; times with one keep it.",
    )  # fmt: skip
    session_gap_min: int = Field(
        60, ge=1, le=7 * 24 * 60,
        description="Purchases without an order id are one basket while consecutive ones are"
        " less than this many minutes apart (the ingest and POST /v1/events store it as"
        " order_id `session:<shopper>:<unix time of its first purchase>`).",
    )  # fmt: skip
    cart_ttl_h: int = Field(
        72, ge=1, le=90 * 24,
        description="The cart is what a shopper added since their last purchase and less than"
        " this many hours before now (RECS_AS_OF, or the wall clock); older lines are no"
        " longer in it.",
    )  # fmt: skip
    themes: ThemeChoice = Field(
        "auto",
        description="Where the features step takes item themes from: category (the shop's"
        " category column; items without one get no theme), learned (clusters of title"
        " embeddings, named by their most distinctive words), auto (category when at least"
        " half the items carry one, else learned), none, or uk-gift (the demo shop's keyword"
        " rules; `make run` sets it).",
    )
    workers: int = Field(
        1, ge=1, le=64,
        description="uvicorn worker processes `python -m app serve` starts (one per core in"
        " production; each loads the model).",
    )  # fmt: skip
    inference_workers: int = Field(
        2, ge=1, le=64, description="Threads that run the model, off the event loop."
    )
    inference_queue: int = Field(
        64, ge=1, le=10_000,
        description="Model calls admitted at once (running + waiting); more get 503 + Retry-After.",
    )  # fmt: skip
    list_cache_ttl_s: int = Field(
        300, ge=0, description="Seconds a shopper's recommendation list stays cached (0: off)."
    )
    reason_cache_ttl_s: int = Field(
        7 * 86_400, ge=0, description="Seconds a generated reason stays cached (0: off)."
    )
    near_cache_ttl_s: float = Field(
        2.0, ge=0, le=60,
        description="Seconds each process also keeps a cached answer in memory, in front of"
        " Redis (0: off). Events drop the shopper's entries in every process at once; this"
        " bounds staleness only when Redis pub/sub is down.",
    )  # fmt: skip
    reason_writer: Literal["template", "transformers", "openai"] = Field(
        "transformers",
        description="Who writes reasons: template (deterministic), transformers (the local LM),"
        " openai (an OpenAI-compatible server such as vLLM). LM output is always guarded, with"
        " the template as fallback.",
    )
    reason_model: str = Field(
        "",
        description="transformers writer: an HF model directory or a GGUF file; empty = the"
        " packaged SmolLM2-135M-Instruct, converted once to bf16 under models/reason_lm/base/.",
    )
    reason_adapter: str = Field(
        "latest",
        description="transformers writer: a LoRA adapter directory, `latest` (the newest under"
        " models/reason_lm/) or `none`.",
    )
    read_requires_key: bool = Field(
        False,
        description="Whether reads (/v1 GET, POST /v1/recommend) need an API key with the"
        " read scope; writes (POST /v1/events) always need one with events:write.",
    )
    cors_origins: list[str] = Field(
        [],
        description='Browser origins allowed to call the API, as JSON: ["https://shop.example"].',
    )
    demo: bool = Field(
        False, description="Serve the /demo page and its add-to-cart endpoint (make run sets it)."
    )
    rate_limit_per_minute: int = Field(
        6000, ge=0,
        description="/v1 requests a minute each IP address may make (requests with a valid API"
        " key count against the key instead), counted in Redis across processes; over it: 429 +"
        " Retry-After. 0 turns the limit off.",
    )  # fmt: skip
    key_rate_limit_per_minute: int = Field(
        60_000, ge=0,
        description="/v1 requests a minute each valid API key may make (a storefront backend"
        " serves many shoppers from one address); over it: 429 + Retry-After. 0: no limit.",
    )  # fmt: skip
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted; larger: 413."
    )
    reason_max_new_tokens: int = Field(
        64, ge=8, le=256, description="Token cap of one generated reason."
    )
    reason_timeout_s: float = Field(
        3.0, gt=0, le=60,
        description="A batch of reasons not generated by then is served as templates.",
    )  # fmt: skip
    reason_late_s: float = Field(
        60.0, ge=0, le=600,
        description="How long a batch past the timeout may go on generating in the background;"
        " its reasons are cached and replace the templates that stood in for them (one such"
        " batch at a time, so late work never queues ahead of new requests). 0 stops it at"
        " the timeout.",
    )  # fmt: skip
    reason_threads: int = Field(
        0, ge=0, le=256,
        description="CPU threads a batch of LM reasons runs on; 0: one per core. A batch is"
        " latency-bound (a shopper waits), so it takes every core while it runs.",
    )  # fmt: skip
    reason_openai_url: str = Field(
        "http://127.0.0.1:8001/v1", description="openai writer: the server's /v1 root."
    )
    reason_openai_model: str = Field("reasonrec", description="openai writer: the model name.")
    reason_openai_api_key: SecretStr | None = Field(
        None, description="openai writer: sent as a Bearer token when set."
    )
    readiness_timeout_s: float = Field(
        1.0, gt=0, le=30, description="Each /readyz dependency check gives up after this long."
    )

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str | None) -> str | None:
        if code is not None and code not in list_currencies():
            raise ValueError(f"{code!r} is not an ISO 4217 currency code Babel knows")
        return code

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, name: str) -> str:
        try:
            Locale.parse(name)
        except (UnknownLocaleError, ValueError) as error:
            raise ValueError(f"{name!r} is not a locale Babel knows") from error
        return name

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin)") from error
        return name


@lru_cache
def get_settings() -> Settings:
    return Settings()
