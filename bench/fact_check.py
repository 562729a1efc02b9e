"""Every claim of served reasons, recomputed from the raw rows. Writes bench/results/fact_check.md
(the demo shop) or fact_check_second_shop.md (--shop second).

    make bench-reasons      # bench.reasons, then this on the demo and on the second shop

Reasons are served as the service serves them (in process, both lists a storefront shows: the
shopper's top items and their top items not bought before), by the template writer and by the
fine-tuned LM writer (its timeout lifted, so the model writes every reason it can; the guard
still swaps a rejected one for the template). Shoppers: held-out shoppers (app/reasons/finetune)
with two or more orders, every shopper without a country, and a few of them with a cart (add to
cart lines this benchmark writes just after their last purchase and deletes again). Each reason
goes through bench/checker.py, which shares no code with app/reasons.

The second shop (bench/shops: US dollars, no countries, category themes, sessions for baskets)
is built through the command line in a throwaway database; it has no adapter of its own, so the
LM writer uses the demo's (its prompts hold slots and states, never the shop's words), and its
shoppers are all unseen by that adapter.
"""

import argparse
import asyncio
import random
import time
from datetime import datetime

import psycopg
from babel.numbers import get_currency_symbol
from tqdm import tqdm

from app.config import PROJECT_ROOT, Settings, get_settings
from app.db.engine import libpq_url
from app.lifespan import offline_service
from app.machine import describe_machine, now
from app.reasons.finetune import data_end, is_held_out
from app.reasons.local_lm import resolve_adapter
from app.schemas import RecommendRequest
from bench.checker import Claim, check_reason, summarise
from bench.shops.build import built_shop

RESULTS = {
    "demo": PROJECT_ROOT / "bench" / "results" / "fact_check.md",
    "second": PROJECT_ROOT / "bench" / "results" / "fact_check_second_shop.md",
}
CART_EVENT = "bench-fact-check-cart-"
WRITERS = {"template": "template", "fine-tuned LM": "transformers"}


def shoppers(
    conn: psycopg.Connection, n: int, seed: int, held_out_only: bool
) -> tuple[list[str], list[str]]:
    """`n` (held-out) shoppers with 2+ orders and every shopper without a country; the second
    list: those of the first given a cart."""
    rows = conn.execute(
        "SELECT u.external_id, u.country IS NULL FROM app_user u"
        " JOIN interaction i ON i.user_id = u.id AND i.event_type = 'purchase'"
        " GROUP BY u.external_id, u.country"
        " HAVING count(DISTINCT coalesce(i.order_id, i.occurred_at::date::text)) >= 2"
        "     OR u.country IS NULL ORDER BY 1"
    ).fetchall()
    if not held_out_only:  # a shop without countries: a sample of everyone
        everyone = [u for u, _ in rows]
        random.Random(seed).shuffle(everyone)  # noqa: S311
        return everyone[:n], everyone[: n // 5]
    held_out = [u for u, unknown in rows if is_held_out(u) and not unknown]
    random.Random(seed).shuffle(held_out)  # noqa: S311 (a sample, not a secret)
    chosen = held_out[:n] + [u for u, unknown in rows if unknown]
    return chosen, held_out[: n // 5]


def add_carts(conn: psycopg.Connection, users: list[str], seed: int, as_of: datetime) -> None:
    """Two popular items each, added to the cart an hour before now (as_of), or a minute after
    the shopper's last purchase when that is later: in the cart, whatever its age limit."""
    rng = random.Random(seed)  # noqa: S311
    popular = [
        i for (i,) in conn.execute(
            "SELECT item_id FROM item_feature ORDER BY buyers DESC LIMIT 200"
        )
    ]  # fmt: skip
    for user in users:
        for n, item in enumerate(rng.sample(popular, 2)):
            conn.execute(
                "INSERT INTO interaction (event_id, user_id, item_id, event_type, quantity,"
                " occurred_at) SELECT %s, u.id, %s, 'add_to_cart', 1,"
                " greatest(max(i.occurred_at) + interval '1 minute', %s - interval '1 hour')"
                " FROM app_user u JOIN interaction i ON i.user_id = u.id"
                " WHERE u.external_id = %s GROUP BY u.id",
                (f"{CART_EVENT}{user}-{n}", item, as_of, user),
            )


async def serve(
    settings: Settings, writer: str, users: list[str], k: int
) -> list[tuple[str, int, str, str]]:
    """(user, item id, reason, writer that wrote it) for both lists of every shopper."""
    config = settings.model_copy(
        update={
            "reason_writer": writer, "list_cache_ttl_s": 0, "reason_cache_ttl_s": 0,
            "reason_timeout_s": 60, "reason_late_s": 0,
        }
    )  # fmt: skip
    served = []
    async with offline_service(config) as service:
        # Responses name items by the shop's id; the checker reads rows by the database's.
        ids = {entry.sku: entry.item_id for entry in service.catalog.items if entry is not None}
        for user in tqdm(users, desc=f"serving ({writer})", unit="shopper"):
            for exclude in (False, True):
                request = RecommendRequest(
                    user_id=user, k=k, with_reasons=True, exclude_purchased=exclude
                )
                response = await service.recommend("fact-check", request)
                assert not isinstance(response, bytes)  # the list cache is off
                served += [
                    (user, ids[item.item_id], item.reason or "", item.reason_writer or "")
                    for item in response.items
                ]
    return served


def main() -> None:
    parser = argparse.ArgumentParser(description="Fact check of served reasons (see docstring).")
    parser.add_argument("--shop", choices=list(RESULTS), default="demo")
    parser.add_argument("--shoppers", type=int, default=100, help="(held-out) shoppers")
    parser.add_argument("-k", type=int, default=2, help="items per list (two lists a shopper)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--writers", nargs="+", choices=list(WRITERS), default=list(WRITERS))
    args = parser.parse_args()
    if args.shop == "demo":
        report = fact_check(get_settings(), args, "every shopper without a country", True)
    else:
        adapter = resolve_adapter("latest", get_settings().models_dir)
        with built_shop(seed=1, max_epochs=12) as shop:
            settings = Settings(
                database_url=shop.database_url, models_dir=shop.models_dir,
                currency="USD", locale="en_US", themes="auto",
                reason_adapter=str(adapter) if adapter else "none",
            )  # fmt: skip
            report = fact_check(settings, args, "no shopper has a country", False)
    RESULTS[args.shop].write_text(report)
    print(report)


def fact_check(
    settings: Settings, args: argparse.Namespace, countries: str, held_out_only: bool
) -> str:
    as_of = settings.as_of or asyncio.run(data_end(settings))
    settings = settings.model_copy(update={"as_of": as_of})
    symbol = (
        get_currency_symbol(settings.currency, locale=settings.locale)
        if settings.currency
        else None
    )
    started = time.perf_counter()
    claims: list[tuple[str, Claim]] = []
    counts: dict[str, dict[str, int]] = {}
    with psycopg.connect(libpq_url(settings.database_url), autocommit=True) as conn:
        users, carted = shoppers(conn, args.shoppers, args.seed, held_out_only)
        try:
            add_carts(conn, carted, args.seed, as_of)
            for label in args.writers:
                served = asyncio.run(serve(settings, WRITERS[label], users, args.k))
                counts[label] = {
                    "reasons": len(served),
                    "written by the LM": sum(w != "template" for *_, w in served),
                }
                for user, item_id, reason, wrote in tqdm(served, desc="checking", unit="reason"):
                    # The LM writer's reasons apart from the templates it fell back to.
                    who = f"{label}, {'template' if wrote == 'template' else 'LM'}-written"
                    found = check_reason(
                        conn, user, item_id, reason, as_of, symbol, settings.cart_ttl_h
                    )
                    claims += [(who, claim) for claim in found]
        finally:
            conn.execute("DELETE FROM interaction WHERE event_id LIKE %s", (f"{CART_EVENT}%",))
    shop = "the demo shop" if args.shop == "demo" else "the second shop (bench/shops, seed 1)"
    sampled = (
        f"{args.shoppers} held out with 2+ orders"
        if held_out_only
        else f"{args.shoppers} drawn from every shopper"
    )
    return "\n".join(
        [
            f"# Fact check of served reasons: {shop}",
            "",
            f"- Machine: {describe_machine()}",
            f"- Date: {now()}; data as of {as_of:%Y-%m-%d}",
            f"- Command: `make bench-reasons` (`.venv/bin/python -m bench.fact_check"
            f"{' --shop second' if args.shop != 'demo' else ''}`)",
            f"- Reason adapter: {resolve_adapter(settings.reason_adapter, settings.models_dir)}",
            f"- Shoppers: {len(users)} ({sampled}; {countries}; {len(carted)} with a cart), two"
            f" lists of {args.k} each (their top items, and their top items not bought before).",
            *(
                f"- {label}: {c['reasons']} reasons served, {c['written by the LM']} of them"
                " written by the LM (the rest are the template it falls back to)"
                for label, c in counts.items()
            ),
            "- Checker: bench/checker.py (no code shared with app/reasons);"
            f" {time.perf_counter() - started:.0f} s in all",
            "",
            summarise(claims),
            "",
        ]
    )


if __name__ == "__main__":
    main()
