"""The generated second shop: deterministic, and of the shape it promises."""

import re
from collections import Counter
from pathlib import Path

import pytest

from bench.shops import generate, write_csv
from bench.shops.second import COLUMNS, summarise


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return generate(seed=1)


def test_same_seed_same_file_other_seed_other_file(tmp_path: Path) -> None:
    write_csv(generate(seed=3, shoppers=60), tmp_path / "a.csv")
    write_csv(generate(seed=3, shoppers=60), tmp_path / "b.csv")
    write_csv(generate(seed=4, shoppers=60), tmp_path / "c.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()
    assert (tmp_path / "a.csv").read_text().splitlines()[0] == ",".join(COLUMNS)


def test_shape_differs_from_the_gift_shop(rows: list[dict[str, str]]) -> None:
    summary = summarise(rows)
    assert summary.shoppers == 450
    assert 150 <= summary.items <= 300
    assert (summary.last - summary.first).days >= 150
    assert set(summary.events) == {"view", "click", "add_to_cart", "purchase"}
    assert all(re.fullmatch(r"B0[0-9A-Z]{8}", row["item_id"]) for row in rows)
    assert all(re.fullmatch(r"A[0-9A-Z]{13}", row["user_id"]) for row in rows)
    assert [row["occurred_at"] for row in rows] == sorted(row["occurred_at"] for row in rows)
    categories = {row["category"] for row in rows}
    assert "Electronics > Audio > Headphones" in categories
    assert all(" > " in category for category in categories)
    titles = {row["title"] for row in rows}
    assert any("&amp;" in title for title in titles)
    assert any(re.search(r"\bi[A-Z][a-z]", title) for title in titles)  # iTunes, iPhone
    assert any(re.search(r"\b(IHOP|AMC|LEGO|BIC)\b", title) for title in titles)


def test_prices_are_dollar_strings_on_carts_and_purchases_only(rows: list[dict[str, str]]) -> None:
    for row in rows:
        if row["event"] in ("add_to_cart", "purchase"):
            assert re.fullmatch(r"\$\d{1,3}(,\d{3})*\.\d{2}", row["price"]), row["price"]
        else:
            assert row["price"] == ""
    plain = generate(seed=1, shoppers=30, price_style="plain")
    assert all(re.fullmatch(r"\d+\.\d{2}", r["price"]) for r in plain if r["price"])


def test_repeat_buying_is_sparse_and_on_consumables(rows: list[dict[str, str]]) -> None:
    purchases = Counter((r["user_id"], r["item_id"]) for r in rows if r["event"] == "purchase")
    once = sum(1 for n in purchases.values() if n == 1)
    assert once / len(purchases) > 0.8  # most shoppers buy an item once
    repeated = {item for (_, item), n in purchases.items() if n > 1}
    category_of = {r["item_id"]: r["category"] for r in rows}
    durable = ("Electronics", "Gift Cards", "Books", "Toys", "Home", "Sports")
    assert repeated
    assert not [item for item in repeated if category_of[item].startswith(durable)]


def test_shoppers_favour_a_few_categories(rows: list[dict[str, str]]) -> None:
    """Latent taste: most of a shopper's views fall in their top three categories."""
    views: dict[str, Counter[str]] = {}
    for row in rows:
        if row["event"] == "view":
            views.setdefault(row["user_id"], Counter())[row["category"]] += 1
    shares = [sum(n for _, n in c.most_common(3)) / c.total() for c in views.values()]
    assert sum(shares) / len(shares) > 0.85


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"shoppers": 0}, "shoppers"), ({"items": 0}, "items"), ({"items": 10_000}, "items")],
)
def test_bad_sizes_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(seed=1, **kwargs)  # type: ignore[arg-type]
