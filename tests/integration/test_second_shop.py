"""A second shop of another shape, end to end: the generated US store (bench/shops) ingested,
featurised and trained through the command line as a new user would, then served in-process:
/v1/recommend with reasons and /v1/explain speak of its ids, its dollars and its categories,
never of the demo shop's pounds or countries."""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.db.engine import drop_database, ensure_database, libpq_url
from app.db.migrate import upgrade
from app.main import create_app
from bench.checker import check_reason
from bench.shops import generate, write_csv
from tests.conftest import REDIS_URL, new_database_url
from tests.integration.test_health import client_for

SEED, SHOPPERS, ITEMS = 2, 250, 150
# The shop's own configuration: nothing of the demo's preset (GBP, en_GB, uk-gift themes).
SHOP_ENV = {"RECS_CURRENCY": "USD", "RECS_LOCALE": "en_US", "RECS_THEMES": "auto"}
AS_OF = datetime(2023, 7, 1, tzinfo=UTC)  # the day after the generated data ends


@dataclass(frozen=True)
class SecondShop:
    database_url: str
    models_dir: Path
    rows: list[dict[str, str]]
    environment: dict[str, str]
    train_output: str

    def category_of(self, item_id: str) -> str:
        return next(row["category"] for row in self.rows if row["item_id"] == item_id)


def cli(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondShop]:
    folder = tmp_path_factory.mktemp("second_shop")
    rows = generate(SEED, SHOPPERS, ITEMS)  # prices written "$1,299.99"
    write_csv(rows, folder / "events.csv")
    url = new_database_url("shop2")
    ensure_database(url)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECS_")},
        "RECS_DATABASE_URL": url,
        "RECS_MODELS_DIR": str(folder / "models"),
        "HF_HUB_OFFLINE": "1",
        **SHOP_ENV,
    }
    try:
        upgrade(url)
        for step in (("ingest", str(folder / "events.csv")), ("features",)):
            done = cli(environment, *step)
            assert done.returncode == 0, done.stderr[-3000:]
        # No --cutoff: the split must come from this shop's own dates.
        # Views, clicks and carts forced in (unset, validation may pick purchases only), so the
        # tests below can see the model read them.
        trained = cli(environment, "train", "--max-epochs", "2", "--events-per-type", "10")
        assert trained.returncode == 0, trained.stderr[-3000:]
        yield SecondShop(url, folder / "models", rows, environment, trained.stderr)
    finally:
        drop_database(url)


def query(shop: SecondShop, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(shop.database_url)) as conn:
        return conn.execute(sql).fetchall()


def test_the_ingest_keeps_the_shops_ids_titles_and_prices(shop: SecondShop) -> None:
    assert {sku for (sku,) in query(shop, "SELECT sku FROM item")} == {
        row["item_id"] for row in shop.rows
    }
    assert {u for (u,) in query(shop, "SELECT external_id FROM app_user")} == {
        row["user_id"] for row in shop.rows
    }
    assert query(shop, "SELECT count(*) FROM app_user WHERE country IS NOT NULL") == [(0,)]
    titles = {title for (title,) in query(shop, "SELECT display_title FROM item")}
    assert not [title for title in titles if "&amp;" in title or "&#39;" in title]
    assert any(" & " in title for title in titles)
    assert any(title.startswith(("iTunes", "IHOP")) for title in titles)
    paid = query(
        shop,
        "SELECT it.sku, i.unit_price FROM interaction i JOIN item it ON it.id = i.item_id"
        " WHERE i.event_type = 'purchase' ORDER BY i.occurred_at, i.id LIMIT 1",
    )
    sku, price = paid[0]
    written = next(
        r["price"] for r in shop.rows if r["item_id"] == sku and r["event"] == "purchase"
    )
    assert f"${price:,.2f}" == written


def test_training_derives_its_cutoff_and_reports_intervals(shop: SecondShop) -> None:
    manifest = json.loads(next(shop.models_dir.glob("two_tower/*/manifest.json")).read_text())
    split = manifest["split"]
    assert split["cutoff_from"] == "the last 20% of the baskets"
    assert datetime(2023, 5, 1, tzinfo=UTC) < datetime.fromisoformat(split["cutoff"]) < AS_OF
    assert split["validation_users"] >= 10
    assert split["test_users"] >= 10
    test = manifest["metrics"]["test"]["all/all_items"]
    assert test["ndcg@10 low"] <= test["ndcg@10"] <= test["ndcg@10 high"]
    assert "the last 20% of the baskets" in shop.train_output


def test_too_little_data_is_a_clear_error_with_the_numbers(shop: SecondShop) -> None:
    # Two days of trade before this cutoff: next to no shopper bought before and after it.
    done = cli(shop.environment, "train", "--cutoff", "2023-01-05")
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert "too little data" in message
    assert "shoppers have a basket before and after the cutoff 2023-01-05 00:00 UTC" in message
    assert "at least 10 in each half" in message
    assert "Traceback" not in done.stderr


@pytest.fixture
async def client(shop: SecondShop) -> AsyncIterator[httpx.AsyncClient]:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()  # db 15 belongs to the tests
    await redis.aclose()
    settings = Settings(
        env="test",
        database_url=shop.database_url,
        redis_url=REDIS_URL,
        models_dir=shop.models_dir,
        as_of=AS_OF,
        reason_writer="template",
        currency="USD",
        locale="en_US",
        themes="auto",
    )
    async with client_for(create_app(settings)) as client:
        yield client


def busiest_shoppers(shop: SecondShop, n: int) -> list[str]:
    rows = query(
        shop,
        "SELECT u.external_id FROM interaction i JOIN app_user u ON u.id = i.user_id"
        " WHERE i.event_type = 'purchase' GROUP BY u.external_id"
        f" ORDER BY count(DISTINCT i.order_id) DESC, u.external_id LIMIT {n}",
    )
    return [user for (user,) in rows]


def assert_about_this_shop(text: str) -> None:
    assert "£" not in text
    assert "United Kingdom" not in text
    assert "GBP" not in text


def assert_theme_from_category(shop: SecondShop, item_id: str, theme: str | None) -> None:
    if theme is not None:
        levels = [level.lower() for level in shop.category_of(item_id).split(" > ")]
        assert theme.lower() in levels, (theme, levels)


async def test_recommend_with_reasons_speaks_of_this_shop(
    shop: SecondShop, client: httpx.AsyncClient
) -> None:
    known = {row["item_id"] for row in shop.rows}
    facts: list[dict[str, Any]] = []
    for user in busiest_shoppers(shop, 8):
        response = await client.get(
            "/v1/recommend", params={"user_id": user, "k": 5, "with_reasons": "true"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["user_id"] == user
        assert body["source"] == "history"
        assert body["items"]
        for item in body["items"]:
            assert item["item_id"] in known
            assert item["price_text"] == f"${item['price']:,.2f}", item
            assert item["reason"]
            assert_about_this_shop(item["reason"])
            assert_theme_from_category(shop, item["item_id"], item["theme"])
            for fact in item["evidence"]:
                assert_about_this_shop(fact["text"])
                facts.append(fact)
    kinds = {fact["kind"] for fact in facts}
    assert "price" in kinds
    for fact in facts:
        if fact["kind"] == "price":
            assert "$" in fact["text"], fact
        if fact["kind"] == "popularity":
            assert "across the shop" in fact["text"], fact
        if fact["kind"] == "shared_theme":
            assert fact["data"].get("theme"), fact


async def test_explain_names_the_shops_item_in_dollars(
    shop: SecondShop, client: httpx.AsyncClient
) -> None:
    user = busiest_shoppers(shop, 1)[0]
    listed = (await client.get("/v1/recommend", params={"user_id": user, "k": 3})).json()
    item_id = listed["items"][0]["item_id"]
    response = await client.get("/v1/explain", params={"user_id": user, "item_id": item_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == user
    assert body["item"]["item_id"] == item_id
    assert body["reason"]
    assert body["evidence"]
    assert_about_this_shop(body["reason"])
    for fact in body["evidence"]:
        assert_about_this_shop(fact["text"])
    assert_theme_from_category(shop, item_id, body["item"]["theme"])
    unknown = await client.get("/v1/explain", params={"user_id": user, "item_id": "B0NOTANITEM"})
    assert unknown.status_code == 404


async def test_every_served_claim_holds_in_this_shops_rows(
    shop: SecondShop, client: httpx.AsyncClient
) -> None:
    """The independent checker recomputes each claim of the served reasons (both lists a
    storefront shows) from the raw rows, in dollars and without countries."""
    ids = dict(query(shop, "SELECT sku, id FROM item"))
    checked, kinds = 0, set()
    with psycopg.connect(libpq_url(shop.database_url), autocommit=True) as conn:
        for user in busiest_shoppers(shop, 12):
            for exclude in ("false", "true"):
                body = (
                    await client.get(
                        "/v1/recommend",
                        params={"user_id": user, "k": 4, "with_reasons": "true",
                                "exclude_purchased": exclude},
                    )
                ).json()  # fmt: skip
                for item in body["items"]:
                    claims = check_reason(
                        conn, user, ids[item["item_id"]], item["reason"], AS_OF, "$"
                    )
                    assert all(c.verdict == "true" for c in claims), [
                        (c.kind, c.verdict, c.detail) for c in claims
                    ]
                    checked += len(claims)
                    kinds |= {c.kind for c in claims}
    assert checked >= 100
    assert {"price", "usual_price"} <= kinds, kinds


def test_the_model_reads_views_clicks_and_carts(shop: SecondShop) -> None:
    manifest = json.loads(next(shop.models_dir.glob("two_tower/*/manifest.json")).read_text())
    assert manifest["inputs"]["sequence_events"] == ["purchase", "add_to_cart", "click", "view"]
    assert manifest["inputs"]["events_per_type"] == manifest["config"]["events_per_type"] > 0
    others = sum(row["event"] != "purchase" for row in shop.rows)
    assert manifest["data"]["other_events"] == others


async def test_serving_reads_the_events_as_training_does(shop: SecondShop) -> None:
    """The views, clicks and carts serving puts in a shopper's sequence at AS_OF (after the
    data: no visit ongoing) are the ones training takes from the snapshot for the same time,
    token for token, with the same gaps. (Purchases within one basket may come in another
    order: the snapshot sorts a basket's items.)"""
    from app.serving.service import Service
    from app.serving.shoppers import load_shopper
    from app.train.data import load_snapshot
    from app.train.inputs import HistoryIndex

    settings = Settings(
        env="test", database_url=shop.database_url, redis_url=REDIS_URL,
        models_dir=shop.models_dir, as_of=AS_OF, reason_writer="template",
    )  # fmt: skip
    app = create_app(settings)
    now = int(AS_OF.timestamp())
    with psycopg.connect(libpq_url(shop.database_url)) as conn:
        snapshot = load_snapshot(conn)
    async with app.router.lifespan_context(app):
        service: Service = app.state.service
        history = HistoryIndex(snapshot, service.bundle.inputs)
        checked = 0
        for user in busiest_shoppers(shop, 5):
            async with service.engine.connect() as conn:
                found = await load_shopper(conn, user, service.catalog, service.reading())
            assert found is not None
            _, served = found
            request = service.recommender.model_input(served, np.zeros(0, np.int64), None, now)
            assert request is not None
            row = service.recommender.retriever.model_row(request)
            u = snapshot.user_external_ids.index(user)
            baskets = snapshot.baskets_of(u)
            trained = history.row(u, baskets.start, baskets.stop, now)
            assert row[0].shape == trained[0].shape
            served_events, trained_events = row[2] > 0, trained[2] > 0
            for a, b in zip(row[:3], trained[:3], strict=True):
                np.testing.assert_array_equal(a[served_events], b[trained_events], err_msg=user)
            checked += int(served_events.sum())
        assert checked > 0, "the busiest shoppers' sequences hold views, clicks or carts"
