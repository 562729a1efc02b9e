"""All configuration, read once from the environment (prefix RECS_) or a .env file."""

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECS_", env_file=".env", extra="ignore")

    env: Literal["dev", "test", "prod"] = Field(
        "dev", description="Deployment environment: dev, test or prod."
    )
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/reasonrec",
        description="SQLAlchemy URL of the Postgres database (psycopg 3 driver).",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis URL for the cache.")
    data_dir: Path = Field(
        PROJECT_ROOT.parent / "shared" / "data",
        description="Folder `python -m app ingest` loads when given no paths (as `make run` does).",
    )
    models_dir: Path = Field(
        PROJECT_ROOT / "models",
        description="Where model bundles are written and read (two_tower/<version>/).",
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
    readiness_timeout_s: float = Field(
        1.0, gt=0, le=30, description="Each /readyz dependency check gives up after this long."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
