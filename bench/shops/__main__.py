"""`python -m bench.shops --seed 1 --out FILE`: write the second shop as a generic events CSV."""

import argparse
from pathlib import Path

from bench.shops.second import PRICE_STYLES, generate, summarise, write_csv


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.shops", description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write.")
    parser.add_argument("--shoppers", type=int, default=450)
    parser.add_argument("--items", type=int, default=180)
    parser.add_argument(
        "--prices",
        choices=PRICE_STYLES,
        default="symbol",
        help='How prices are written: "$1,299.99" (symbol) or "1299.99" (plain).',
    )
    args = parser.parse_args()
    try:
        rows = generate(args.seed, args.shoppers, args.items, args.prices)
    except ValueError as exc:
        parser.error(str(exc))
    write_csv(rows, args.out)
    s = summarise(rows)
    events = ", ".join(f"{n:,} {event}" for event, n in sorted(s.events.items()))
    print(
        f"wrote {args.out}: {s.rows:,} rows ({events}); {s.shoppers} shoppers, {s.items} items,"
        f" {s.first:%Y-%m-%d} to {s.last:%Y-%m-%d}; {s.repeat_buyers} shoppers bought an item"
        " twice or more"
    )


if __name__ == "__main__":
    main()
