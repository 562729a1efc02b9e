"""`python -m bench.shops.quality`: the second shop's section of bench/results/quality.md.

Runs the shop through the command line as a new user would (migrate, ingest, features, train
without a cutoff, evaluate --peers) in a throwaway database and models folder, with the shop's
own configuration, then drops the database. The report's other sections are kept.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy.engine import make_url

from app.config import get_settings
from app.db.engine import drop_database
from bench.shops.second import generate, write_csv

SHOP_ENV = {"RECS_CURRENCY": "USD", "RECS_LOCALE": "en_US", "RECS_THEMES": "auto"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shops.quality", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=Path("bench/results/quality.md"))
    parser.add_argument("--max-epochs", type=int, default=12)
    args = parser.parse_args()
    server = make_url(get_settings().database_url)
    url = server.set(database=f"reasonrec_second_shop_{uuid.uuid4().hex[:10]}")
    with tempfile.TemporaryDirectory(prefix="reasonrec-second-shop-") as folder:
        events = Path(folder) / "events.csv"
        write_csv(generate(args.seed), events)
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RECS_")},
            "RECS_DATABASE_URL": url.render_as_string(hide_password=False),
            "RECS_MODELS_DIR": str(Path(folder) / "models"),
            **SHOP_ENV,
        }
        shop = f"second shop (bench/shops, seed {args.seed})"
        steps = [
            ["migrate"],
            ["ingest", str(events)],
            ["features"],
            ["train", "--max-epochs", str(args.max_epochs)],
            ["evaluate", "--peers", "--report", str(args.report.resolve()), "--shop", shop],
        ]
        try:
            for step in steps:
                print(f"$ python -m app {' '.join(step)}", flush=True)
                subprocess.run([sys.executable, "-m", "app", *step], env=environment, check=True)
        except subprocess.CalledProcessError as exc:
            sys.exit(f"`python -m app {' '.join(exc.cmd[3:])}` failed (exit {exc.returncode})")
        finally:
            drop_database(url.render_as_string(hide_password=False))


if __name__ == "__main__":
    main()
