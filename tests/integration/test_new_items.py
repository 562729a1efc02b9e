"""An item ingested after the model was trained is served before the next training run: once the
features step has embedded its title, the item tower gives it a vector from title, theme and
price band alone, and it is in lists, similar items, histories and reasons."""

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import psycopg
import pytest

from app.config import Settings
from app.db.engine import libpq_url
from app.features import build_features
from app.main import create_app
from tests.conftest import REDIS_URL, TinyWorld
from tests.integration.test_api import shoppers_by_baskets
from tests.integration.test_health import client_for

AS_OF = datetime(2011, 2, 1, tzinfo=UTC)
NEW = "LB-NEW/1"  # the shop's id of the new item; a "/" in it, as some shops' ids have
PATH = f"/v1/items/{quote(NEW, safe='')}"
LUNCH_BAGS = {"20725", "20726", "20727", "20728", "22382", "22383", "22384"}


@pytest.fixture(scope="module")
def buyer(tiny_world: TinyWorld, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A shopper who bought the new lunch bag (ingested after training), features rebuilt."""
    user = shoppers_by_baskets(tiny_world, 1)[0]
    events = tmp_path_factory.mktemp("new") / "events.csv"
    events.write_text(
        "user_id,item_id,occurred_at,event,quantity,price,title,category\n"
        f"{user},{NEW},2011-01-28T10:00:00Z,purchase,2,1.65,LUNCH BAG RED SPOTTY PICNIC,\n"
    )
    subprocess.run(
        [sys.executable, "-m", "app", "ingest", str(events)],
        env={**os.environ, "RECS_DATABASE_URL": tiny_world.database_url},
        capture_output=True, check=True,
    )  # fmt: skip
    with psycopg.connect(libpq_url(tiny_world.database_url), autocommit=True) as conn:
        build_features(conn, themes="uk-gift")  # as the tiny world was built
    return user


@pytest.fixture
async def client(tiny_world: TinyWorld, buyer: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        env="test", database_url=tiny_world.database_url, redis_url=REDIS_URL,
        models_dir=tiny_world.models_dir, as_of=AS_OF, reason_writer="template",
        list_cache_ttl_s=0, reason_cache_ttl_s=0,
    )  # fmt: skip
    async with client_for(create_app(settings)) as client:
        yield client


def ids(items: list[dict[str, object]]) -> list[object]:
    return [item["item_id"] for item in items]


async def test_the_new_item_is_in_the_catalog_with_its_features(
    client: httpx.AsyncClient, tiny_world: TinyWorld
) -> None:
    maps = next(tiny_world.models_dir.glob("two_tower/*/id_maps.json")).read_text()
    assert NEW not in json.loads(maps)["item_skus"]  # the model never saw it
    item = await client.get(PATH)
    assert item.status_code == 200, item.text
    body = item.json()
    assert body["item_id"] == NEW
    assert body["price"] == 1.65
    assert body["theme"]  # from its title, by the features step


async def test_the_new_item_is_like_the_other_lunch_bags(client: httpx.AsyncClient) -> None:
    similar = (await client.get(f"{PATH}/similar", params={"k": 10})).json()["similar"]
    assert set(ids(similar)) & LUNCH_BAGS
    # And the other way: among the items like an old lunch bag.
    nearest = [
        (await client.get(f"/v1/items/{sku}/similar", params={"k": 20})).json()["similar"]
        for sku in sorted(LUNCH_BAGS)
    ]
    assert any(NEW in ids(found) for found in nearest)


async def test_the_new_item_is_recommended_and_explained(
    client: httpx.AsyncClient, buyer: str
) -> None:
    history = (await client.get(f"/v1/shoppers/{buyer}/history", params={"limit": 3})).json()
    assert history["purchases"][0]["item_id"] == NEW  # the latest purchase
    theme = (await client.get(PATH)).json()["theme"]
    # Every item of its theme is ranked: the new one is among them, scored by the model.
    listing = await client.get(
        "/v1/recommend",
        params={"user_id": buyer, "theme": theme, "k": 100, "with_reasons": "true"},
    )
    found = [item for item in listing.json()["items"] if item["item_id"] == NEW]
    assert found, ids(listing.json()["items"])
    assert found[0]["reason"]
    explained = await client.get("/v1/explain", params={"user_id": buyer, "item_id": NEW})
    assert explained.status_code == 200, explained.text
    assert explained.json()["item"]["item_id"] == NEW
    assert explained.json()["reason"]
    # An anonymous session of the new item alone is served from it.
    session = (await client.post("/v1/recommend", json={"item_ids": [NEW], "k": 5})).json()
    assert session["source"] == "session"
    assert NEW not in ids(session["items"])
