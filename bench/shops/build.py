"""The second shop, built as a new user would build it: migrate, ingest, features and train
through the command line, in a throwaway database and models folder, with the shop's own
configuration. The database is dropped afterwards."""

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from app.config import get_settings
from app.db.engine import drop_database
from bench.shops.second import generate, write_csv

# Nothing of the demo's preset (GBP, en_GB, uk-gift themes).
SHOP_ENV = {"RECS_CURRENCY": "USD", "RECS_LOCALE": "en_US", "RECS_THEMES": "auto"}


@dataclass(frozen=True)
class BuiltShop:
    database_url: str
    models_dir: Path
    environment: dict[str, str]  # the shop's RECS_ settings, for more `python -m app` steps


def run_app(environment: dict[str, str], *step: str) -> None:
    """One `python -m app` step; exits with its command and status when it fails."""
    print(f"$ python -m app {' '.join(step)}", flush=True)
    done = subprocess.run([sys.executable, "-m", "app", *step], env=environment, check=False)
    if done.returncode != 0:
        sys.exit(f"`python -m app {' '.join(step)}` failed (exit {done.returncode})")


@contextmanager
def built_shop(seed: int, max_epochs: int) -> Iterator[BuiltShop]:
    server = make_url(get_settings().database_url)
    url = server.set(database=f"reasonrec_second_shop_{uuid.uuid4().hex[:10]}")
    database_url = url.render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory(prefix="reasonrec-second-shop-") as folder:
        events = Path(folder) / "events.csv"
        write_csv(generate(seed), events)
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECS_")},
            "RECS_DATABASE_URL": database_url,
            "RECS_MODELS_DIR": str(Path(folder) / "models"),
            **SHOP_ENV,
        }
        try:
            run_app(environment, "migrate")
            run_app(environment, "ingest", str(events))
            run_app(environment, "features")
            run_app(environment, "train", "--max-epochs", str(max_epochs))
            yield BuiltShop(database_url, Path(folder) / "models", environment)
        finally:
            drop_database(database_url)
