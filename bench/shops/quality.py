"""`python -m bench.shops.quality`: the second shop's section of bench/results/quality.md.

Builds the shop through the command line as a new user would (bench/shops/build.py: migrate,
ingest, features, train without a cutoff), then runs `evaluate --peers` on it. The report's
other sections are kept.
"""

import argparse
from pathlib import Path

from bench.shops.build import built_shop, run_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shops.quality", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=Path("bench/results/quality.md"))
    parser.add_argument("--max-epochs", type=int, default=12)
    args = parser.parse_args()
    shop = f"second shop (bench/shops, seed {args.seed})"
    with built_shop(args.seed, args.max_epochs) as built:
        run_app(
            built.environment,
            "evaluate", "--peers", "--report", str(args.report.resolve()), "--shop", shop,
        )  # fmt: skip


if __name__ == "__main__":
    main()
