"""A second shop, generated from a seed: a US general store exported as generic events.

Its shape differs from the UCI gift shop on every axis the service must not assume: prices in US
dollars written as strings ("$1,299.99"), no countries, category paths ("Electronics > Audio >
Headphones"), no order ids, views, clicks and add-to-carts besides purchases, string ids
("B0091JKVU0" items, "A3KXJ0BQ7RZ2VW" shoppers), HTML entities in some titles ("Salt &amp;
Pepper"), the shop's own casing ("iTunes", "IHOP", a few titles in capitals), and sparse repeat
buying: most shoppers buy an item once, a minority reorder consumables on a cadence.

There is something to learn: each shopper favours one to three categories (latent taste) and
items within a category have a skewed popularity, so a model that reads history beats most
popular. Everything is drawn from one numpy Generator, so a seed gives the same file.
"""

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

PriceStyle = Literal["symbol", "plain"]
PRICE_STYLES: tuple[PriceStyle, ...] = ("symbol", "plain")
COLUMNS = ("user_id", "item_id", "occurred_at", "event", "quantity", "price", "title", "category")
START = datetime(2023, 1, 2, tzinfo=UTC)
DAYS = 180
ID_ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


@dataclass(frozen=True)
class Category:
    path: str
    low: float  # price range of its items, dollars
    high: float
    consumable: bool  # reordered on a cadence by some of its buyers
    titles: tuple[str, ...]  # written as the shop writes them
    # Each title is sold in each variant (a suffix); a "$25" variant is also the price.
    variants: tuple[str, ...] = ("",)


# Each category lists more titles than a default run uses; `items` picks among them.
CATALOGUE = (
    Category(
        "Electronics > Audio > Headphones",
        19,
        249,
        False,
        (
            "Sony WH-1000XM4 Wireless Noise Cancelling Headphones",
            "JBL Tune 510BT On-Ear Headphones",
            "Anker Soundcore Life Q30 Headphones",
            "Skullcandy Dime True Wireless Earbuds",
            "Bose QuietComfort Earbuds II",
            "Apple AirPods (2nd Generation)",
            "Beats Studio Buds &ndash; True Wireless",
            "JBL Vibe 200TWS Earbuds",
            "Sony WF-C500 Truly Wireless Earbuds",
            "Jabra Elite 4 Active Sport Earbuds",
            "Audio-Technica ATH-M50x Studio Monitor Headphones",
            "TOZO T6 Wireless Earbuds",
            "Skullcandy Crusher Evo Over-Ear Headphones",
            "Anker Soundcore Space A40 Earbuds",
        ),
        (", Black", ", White"),
    ),
    Category(
        "Electronics > Accessories > Cables & Chargers",
        7,
        45,
        False,
        (
            "Anker USB-C to USB-C Cable 6ft (2-Pack)",
            "Belkin BoostCharge 65W GaN Charger",
            "UGREEN HDMI 2.1 Cable 10ft 8K",
            "Amazon Basics Lightning to USB-A Cable 3-Pack",
            "Anker 313 Wireless Charger Pad",
            "Belkin 3-in-1 MagSafe Charging Stand",
            "UGREEN USB-C Hub 7-in-1 with HDMI",
            "Amazon Basics Micro-USB Cable 10ft",
            "Anker PowerCore 10000 Portable Charger",
            "OtterBox iPhone 15 Case, Black",
            "Spigen Tempered Glass Screen Protector for iPhone 15",
            "TP-Link AC1200 USB WiFi Adapter",
        ),
    ),
    Category(
        "Electronics > TV & Video",
        149,
        1299.99,
        False,
        (
            "TCL 55-Inch 4K UHD Smart TV",
            "Roku Streaming Stick 4K",
            "Amazon Fire TV Stick 4K Max",
            "Samsung 65-Inch QLED 4K TV",
            "LG 48-Inch OLED evo TV",
            "Vizio 40-Inch 1080p Smart TV",
        ),
    ),
    Category(
        "Gift Cards > Restaurants",
        25,
        50,
        False,
        (
            "IHOP Gift Card",
            "Olive Garden Gift Card",
            "Chili&#39;s Gift Card",
            "Buffalo Wild Wings Gift Card",
            "Texas Roadhouse Gift Card",
            "Starbucks Gift Card",
            "Dunkin&#39; Gift Card",
            "P.F. Chang&#39;s Gift Card",
        ),
        (" $25", " $50"),
    ),
    Category(
        "Gift Cards > Entertainment",
        10,
        50,
        False,
        (
            "iTunes Gift Card",
            "AMC Theatres Gift Card",
            "Google Play Gift Card",
            "Xbox Gift Card",
            "PlayStation Store Gift Card",
            "Nintendo eShop Gift Card",
            "Fandango Gift Card",
            "Roblox Digital Gift Card",
        ),
        (" $10", " $25", " $50"),
    ),
    Category(
        "Grocery > Coffee & Tea",
        8,
        30,
        True,
        (
            "Peet&#39;s Coffee Major Dickason&#39;s Blend Whole Bean 2lb",
            "Lavazza Super Crema Whole Bean Coffee 2.2lb",
            "Starbucks K-Cup Pods, Pike Place, 72ct",
            "Death Wish Coffee Dark Roast Ground 16oz",
            "Twinings Earl Grey Tea, 100 Bags",
            "Stok Cold Brew Coffee Unsweetened 48oz",
            "Green Mountain Breakfast Blend K-Cups 48ct",
            "Bigelow Green Tea, 40 Bags (Pack of 6)",
            "DUNKIN ORIGINAL BLEND GROUND COFFEE 30OZ",
            "Nespresso Vertuo Variety Pack, 30 Capsules",
            "Folgers Classic Roast Ground Coffee 43.5oz",
            "Tazo Chai Latte Concentrate 32oz",
        ),
    ),
    Category(
        "Health & Household > Household Supplies > Paper & Plastic",
        10,
        35,
        True,
        (
            "Bounty Select-A-Size Paper Towels, 12 Double Rolls",
            "Charmin Ultra Soft Toilet Paper, 24 Mega Rolls",
            "Kleenex Facial Tissues, 8 Boxes",
            "Glad ForceFlex Tall Kitchen Trash Bags, 80ct",
            "Ziploc Storage Bags, Gallon, 150ct",
            "Scott 1000 Toilet Paper, 32 Rolls",
            "Reynolds Wrap Aluminum Foil, 200 sq ft",
            "Hefty Strong Trash Bags 30 Gallon, 56ct",
            "Viva Signature Cloth Paper Towels, 6 Rolls",
            "Dixie Everyday Paper Plates, 220ct",
        ),
    ),
    Category(
        "Pet Supplies > Dogs > Food & Treats",
        12,
        70,
        True,
        (
            "Purina Pro Plan Adult Chicken &amp; Rice Dry Dog Food 35lb",
            "Blue Buffalo Life Protection Lamb &amp; Brown Rice 30lb",
            "Pedigree Dentastix Large Dog Treats, 32ct",
            "Milk-Bone Original Dog Biscuits 10lb",
            "Greenies Original Regular Dental Treats, 36ct",
            "Hill&#39;s Science Diet Puppy Food 15.5lb",
            "Nutro Ultra Small Breed Dog Food 8lb",
            "Purina Beneful IncrediBites Wet Food 12-Pack",
            "Zuke&#39;s Mini Naturals Training Treats 16oz",
            "Rachael Ray Nutrish Chicken &amp; Veggies 28lb",
        ),
    ),
    Category(
        "Beauty & Personal Care > Skin Care",
        9,
        35,
        True,
        (
            "CeraVe Moisturizing Cream 19oz",
            "Neutrogena Hydro Boost Water Gel 1.7oz",
            "La Roche-Posay Anthelios SPF 60 Sunscreen",
            "CeraVe Hydrating Facial Cleanser 16oz",
            "Cetaphil Gentle Skin Cleanser 20oz",
            "Aveeno Daily Moisturizing Lotion 18oz",
            "The Ordinary Niacinamide 10% + Zinc 1%",
            "Neutrogena Makeup Remover Wipes, 4-Pack",
            "EltaMD UV Clear SPF 46 Face Sunscreen",
            "Vaseline Intensive Care Lotion 20oz",
        ),
    ),
    Category(
        "Home & Kitchen > Kitchen & Dining > Cookware",
        12,
        120,
        False,
        (
            "Lodge 12-Inch Cast Iron Skillet",
            "T-fal Ultimate Nonstick Fry Pan Set, 3 Piece",
            "OXO Good Grips Salt &amp; Pepper Grinder Set",
            "Cuisinart Stainless Steel Mixing Bowls",
            "Instant Pot Duo 7-in-1, 6 Quart",
            "Pyrex Glass Measuring Cup Set, 3 Piece",
            "KitchenAid Classic Spatula Set",
            "Le Creuset Enameled Dutch Oven 5.5qt",
            "OXO Good Grips 3-Piece Cutting Board Set",
            "Rubbermaid Brilliance Food Storage, 22 Piece",
            "Ninja AF101 Air Fryer, 4 Qt",
            "HENCKELS Premium 15-Piece Knife Set",
        ),
    ),
    Category(
        "Toys & Games > Puzzles",
        12,
        30,
        False,
        (
            "Ravensburger 1000 Piece Jigsaw Puzzle &ndash; Lighthouse at Dusk",
            "Buffalo Games Cinque Terre 1000 Piece Puzzle",
            "Springbok National Parks 500 Piece Puzzle",
            "White Mountain Candy Bar Wrappers 1000 Piece",
            "Ravensburger Disney Villainous 1000pc",
            "Cobble Hill Birdhouses 1000 Piece Puzzle",
            "LEGO Architecture Statue of Liberty",
            "Rubik&#39;s Cube 3x3 Original",
        ),
    ),
    Category(
        "Books > Cookbooks",
        15,
        40,
        False,
        (
            "The Food Lab: Better Home Cooking Through Science",
            "Salt, Fat, Acid, Heat",
            "Magnolia Table, Volume 3",
            "Half Baked Harvest Every Day",
            "The Complete Cooking for Two Cookbook",
            "Dessert Person: Recipes and Guidance",
            "BBQ &amp; GRILLING: THE ULTIMATE GUIDE",
            "Mastering the Art of French Cooking",
            "The Instant Pot Bible",
            "Joy of Cooking (2019 Edition)",
        ),
    ),
    Category(
        "Sports & Outdoors > Camping & Hiking",
        15,
        250,
        False,
        (
            "Coleman Sundome 2-Person Dome Tent",
            "Black Diamond Spot 400 LED Headlamp",
            "Hydro Flask 32 oz Wide Mouth Water Bottle",
            "Osprey Daylite Plus Daypack 20L",
            "TETON Sports Celsius Sleeping Bag 20&deg;F",
            "REI Co-op Flash Trekking Poles",
            "Coleman Classic Propane Camp Stove",
            "LifeStraw Personal Water Filter",
            "Yeti Rambler 20 oz Tumbler",
            "MSR PocketRocket 2 Stove Kit",
        ),
        (", Navy", ", Olive"),
    ),
    Category(
        "Office Products > Writing & Correction",
        5,
        25,
        True,
        (
            "Pilot G2 Premium Gel Pens, Black, 12-Pack",
            "Sharpie Permanent Markers, Fine Point, 24ct",
            "Post-it Super Sticky Notes, 3x3 in, 12 Pads",
            "BIC Cristal Xtra Smooth Ballpoint, 40ct",
            "Paper Mate Flair Felt Tip Pens, 12ct",
            "Expo Low-Odor Dry Erase Markers, 8ct",
            "Ticonderoga #2 Pencils, 96ct",
            "Scotch Magic Tape, 6 Rolls",
        ),
    ),
)


@dataclass(frozen=True)
class ShopSummary:
    rows: int
    shoppers: int
    items: int
    events: dict[str, int]
    first: datetime
    last: datetime
    repeat_buyers: int  # shoppers who bought one item in two or more sessions


@dataclass(frozen=True)
class _Item:
    item_id: str
    title: str
    category: int
    price: float
    weight: float  # popularity within its category


def _ids(rng: np.random.Generator, count: int, prefix: str, length: int) -> list[str]:
    """Distinct upper-case alphanumeric ids, each `prefix` + `length` characters."""
    ids: dict[str, None] = {}
    while len(ids) < count:
        ids["".join([prefix, *rng.choice(ID_ALPHABET, length)])] = None
    return list(ids)


def _catalogue(rng: np.random.Generator, items: int) -> list[_Item]:
    titles = [
        (c, title, variant)
        for c, category in enumerate(CATALOGUE)
        for title in category.titles
        for variant in category.variants
    ]
    if not 1 <= items <= len(titles):
        raise ValueError(f"items must be between 1 and {len(titles)}, not {items}")
    chosen = sorted(rng.choice(len(titles), items, replace=False).tolist())
    ids = _ids(rng, items, "B0", 8)
    catalogue = []
    for item_id, index in zip(ids, chosen, strict=True):
        c, title, variant = titles[index]
        category = CATALOGUE[c]
        if variant.startswith(" $"):
            price = float(variant[2:])
        else:
            # Log-uniform within the category's range, mostly at .99 as shops price.
            price = float(np.exp(rng.uniform(np.log(category.low), np.log(category.high))))
            price = round(price) - (0.01 if rng.random() < 0.6 else 0.0)
        catalogue.append(_Item(item_id, title + variant, c, max(round(price, 2), 0.99), 0.0))
    # Popularity: a Zipf-like skew over a random order of each category's items.
    weighted = []
    for c in range(len(CATALOGUE)):
        members = [item for item in catalogue if item.category == c]
        for rank, position in enumerate(rng.permutation(len(members))):
            item = members[int(position)]
            weighted.append(_Item(item.item_id, item.title, c, item.price, 1 / (rank + 1) ** 1.1))
    return sorted(weighted, key=lambda item: item.item_id)


def _price_text(dollars: float, style: PriceStyle) -> str:
    return f"${dollars:,.2f}" if style == "symbol" else f"{dollars:.2f}"


def generate(
    seed: int, shoppers: int = 450, items: int = 180, price_style: PriceStyle = "symbol"
) -> list[dict[str, str]]:
    """The shop's events as generic-format rows, in time order."""
    if shoppers < 1:
        raise ValueError(f"shoppers must be at least 1, not {shoppers}")
    if price_style not in PRICE_STYLES:
        raise ValueError(f"price style must be one of {', '.join(PRICE_STYLES)}")
    rng = np.random.default_rng(seed)
    catalogue = _catalogue(rng, items)
    by_category = [
        [i for i, item in enumerate(catalogue) if item.category == c] for c in range(len(CATALOGUE))
    ]
    present = [c for c, members in enumerate(by_category) if members]
    category_weight = rng.dirichlet(np.full(len(present), 2.0))
    rows: list[tuple[float, int, dict[str, str]]] = []  # (time, order within time, row)

    def emit(user: str, item: int, at: float, event: str, quantity: int = 1) -> None:
        product = catalogue[item]
        priced = event in ("add_to_cart", "purchase")
        # One purchase in ten is on sale: the paid price is not always the list price.
        paid = product.price * (0.85 if event == "purchase" and rng.random() < 0.1 else 1.0)
        row = {
            "user_id": user,
            "item_id": product.item_id,
            "occurred_at": datetime.fromtimestamp(round(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "event": event,
            "quantity": str(quantity),
            "price": _price_text(paid, price_style) if priced else "",
            "title": product.title,
            "category": CATALOGUE[product.category].path,
        }
        rows.append((at, len(rows), row))

    def pick(category: int) -> int:
        members = by_category[category]
        weights = np.asarray([catalogue[i].weight for i in members])
        return members[int(rng.choice(len(members), p=weights / weights.sum()))]

    end = START.timestamp() + DAYS * 86400
    for user in _ids(rng, shoppers, "A", 13):
        tastes = rng.choice(
            len(present),
            int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2])),
            replace=False,
            p=category_weight,
        )
        taste = rng.dirichlet(np.full(len(tastes), 1.5))
        joined = START.timestamp() + rng.uniform(0, 0.8) * DAYS * 86400
        sessions = 1 + rng.poisson(rng.lognormal(np.log(3.5), 0.6))
        bought: set[int] = set()
        for started in np.sort(rng.uniform(joined, end, sessions)):
            at = float(started)
            if rng.random() < 0.85:
                category = present[int(tastes[rng.choice(len(tastes), p=taste)])]
            else:
                category = present[int(rng.choice(len(present)))]
            viewed: list[int] = []
            for _ in range(int(rng.integers(1, 7))):
                item = pick(category)
                at += rng.uniform(20, 240)
                emit(user, item, at, "view")
                viewed.append(item)
            clicked = [i for i in dict.fromkeys(viewed) if rng.random() < 0.5] or viewed[:1]
            basket = []
            for item in clicked:
                at += rng.uniform(10, 120)
                emit(user, item, at, "click")
                # Durable goods are bought once: a shopper looks at them again, never rebuys.
                buyable = item not in bought or CATALOGUE[catalogue[item].category].consumable
                if buyable and rng.random() < 0.6:
                    at += rng.uniform(10, 90)
                    emit(user, item, at, "add_to_cart")
                    basket.append(item)
            basket = [item for item in basket if rng.random() < 0.75]
            at += rng.uniform(30, 300)
            for item in basket:
                consumable = CATALOGUE[catalogue[item].category].consumable
                quantity = 2 if consumable and rng.random() < 0.2 else 1
                emit(user, item, at, "purchase", quantity)
                if consumable and item not in bought and rng.random() < 0.3:
                    _reorders(rng, emit, user, item, at, end)
                bought.add(item)
    rows.sort(key=lambda entry: (entry[0], entry[1]))
    return [row for _, _, row in rows]


def _reorders(
    rng: np.random.Generator, emit: Callable[..., None], user: str, item: int, at: float, end: float
) -> None:
    """A consumable reordered every `cadence` days (with jitter) until the shopper stops."""
    cadence = rng.uniform(14, 45) * 86400
    while True:
        at += cadence * rng.uniform(0.85, 1.15)
        if at >= end or rng.random() < 0.12:
            return
        emit(user, item, at, "view")
        emit(user, item, at + rng.uniform(30, 120), "purchase")


def summarise(rows: Iterable[dict[str, str]]) -> ShopSummary:
    rows = list(rows)
    sessions: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row["event"] == "purchase":
            sessions[row["user_id"], row["item_id"]] += 1
    times = [row["occurred_at"] for row in rows]
    return ShopSummary(
        rows=len(rows),
        shoppers=len({row["user_id"] for row in rows}),
        items=len({row["item_id"] for row in rows}),
        events=dict(Counter(row["event"] for row in rows)),
        first=datetime.fromisoformat(min(times)),
        last=datetime.fromisoformat(max(times)),
        repeat_buyers=len({user for (user, _), n in sessions.items() if n > 1}),
    )


def write_csv(rows: Iterable[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
