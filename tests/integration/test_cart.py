"""The cart: what a shopper added since their last purchase and within RECS_CART_TTL_H of the
service's now (RECS_AS_OF here), never a line of days ago."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis

from app.config import Settings
from app.main import create_app
from tests.conftest import REDIS_URL, Shoppers, TinyWorld
from tests.integration.test_auth import add_key
from tests.integration.test_health import client_for

AS_OF = datetime(2011, 2, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def writer_key(tiny_world: TinyWorld) -> str:
    return add_key(tiny_world.database_url, "cart storefront", ["events:write"])


@pytest.fixture
async def client(tiny_world: TinyWorld, writer_key: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        env="test", database_url=tiny_world.database_url, redis_url=REDIS_URL,
        models_dir=tiny_world.models_dir, as_of=AS_OF, reason_writer="template", cart_ttl_h=72,
    )  # fmt: skip
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()  # db 15 belongs to the tests
    await redis.aclose()
    async with client_for(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {writer_key}"
        yield client


def event(user: str, item: str, kind: str, at: datetime) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4().hex, "user_id": user, "item_id": item, "event": kind,
        "occurred_at": at.isoformat(),
    }  # fmt: skip


async def cart_of(client: httpx.AsyncClient, user: str) -> list[str]:
    response = await client.get(f"/v1/shoppers/{user}/history")
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["cart"]]


async def test_an_old_cart_line_is_not_in_the_cart_and_a_fresh_one_is(
    client: httpx.AsyncClient, shoppers: Shoppers
) -> None:
    user = f"cart-{uuid.uuid4().hex[:8]}"
    old, fresh, later = shoppers.items[:3]
    batch = [
        event(user, old, "add_to_cart", AS_OF - timedelta(days=5)),
        event(user, fresh, "add_to_cart", AS_OF - timedelta(hours=1)),
        # After the service's now: not in the cart yet.
        event(user, later, "add_to_cart", AS_OF + timedelta(hours=1)),
    ]
    assert (await client.post("/v1/events", json={"events": batch})).status_code == 200
    assert await cart_of(client, user) == [fresh]


async def test_the_cart_ttl_counts_back_from_now(
    client: httpx.AsyncClient, shoppers: Shoppers
) -> None:
    """A line just inside the 72 hours is in the cart, one just outside is not."""
    user = f"cart-{uuid.uuid4().hex[:8]}"
    inside, outside = shoppers.items[3:5]
    batch = [
        event(user, outside, "add_to_cart", AS_OF - timedelta(hours=72, minutes=1)),
        event(user, inside, "add_to_cart", AS_OF - timedelta(hours=71, minutes=59)),
    ]
    assert (await client.post("/v1/events", json={"events": batch})).status_code == 200
    assert await cart_of(client, user) == [inside]


async def test_a_purchase_empties_the_cart_before_it(
    client: httpx.AsyncClient, shoppers: Shoppers
) -> None:
    user = f"cart-{uuid.uuid4().hex[:8]}"
    bought, after = shoppers.items[5:7]
    batch = [
        event(user, bought, "add_to_cart", AS_OF - timedelta(hours=3)),
        {**event(user, bought, "purchase", AS_OF - timedelta(hours=2)), "order_id": "o-1"},
        event(user, after, "add_to_cart", AS_OF - timedelta(hours=1)),
    ]
    assert (await client.post("/v1/events", json={"events": batch})).status_code == 200
    assert await cart_of(client, user) == [after]


async def test_a_line_added_this_second_is_in_the_cart(
    tiny_world: TinyWorld, writer_key: str, shoppers: Shoppers
) -> None:
    """An event at now itself (as a storefront posts one without a time) is in the cart on the
    next read, though now has a fraction of a second (the demo page re-reads at once)."""
    now = AS_OF + timedelta(microseconds=500_000)
    settings = Settings(
        env="test", database_url=tiny_world.database_url, redis_url=REDIS_URL,
        models_dir=tiny_world.models_dir, as_of=now, reason_writer="template",
    )  # fmt: skip
    user = f"cart-{uuid.uuid4().hex[:8]}"
    [item] = shoppers.items[7:8]
    async with client_for(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {writer_key}"
        posted = {"event_id": uuid.uuid4().hex, "user_id": user, "item_id": item,
                  "event": "add_to_cart"}  # fmt: skip
        assert (await client.post("/v1/events", json={"events": [posted]})).status_code == 200
        assert await cart_of(client, user) == [item]
