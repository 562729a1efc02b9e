"""Themes from the shop's categories, learned from titles, none, and the uk-gift preset (the
keyword taxonomy on real titles, and the neighbour vote for titles no rule matches)."""

import re

import numpy as np
import pytest
from sqlalchemy import CheckConstraint

from app.db.tables import item_feature
from app.features.themes import (
    MIN_LEARNED_ITEMS,
    SOURCES,
    assign_themes,
    category_paths,
    category_themes,
    clean_level,
    cluster_count,
    learned_themes,
)
from app.features.uk_gift import (
    TAXONOMY,
    THEME_NAMES,
    keyword_theme,
    neighbour_themes,
    title_words,
)

EXAMPLES = {
    "WHITE HANGING HEART T-LIGHT HOLDER": "Candles and T-lights",
    "SET OF 12 ROSE BOTANICAL T-LIGHTS": "Candles and T-lights",
    "LUNCH BAG RED RETROSPOT": "Lunch bags and boxes",
    "JUMBO BAG RED RETROSPOT": "Bags and purses",
    "PACK OF 72 RETROSPOT CAKE CASES": "Cake and baking",
    "REGENCY CAKESTAND 3 TIER": "Cake and baking",
    "PAPER CHAIN KIT 50'S CHRISTMAS": "Christmas decorations",
    "VINTAGE CHRISTMAS GIFT BAG LARGE": "Christmas decorations",  # seasonal themes come first
    "HANGING BUNNY EASTER DECORATION": "Easter",
    "KINGS CHOICE MUG": "Mugs and cups",
    "FRENCH BLUE METAL DOOR SIGN, 6": "Signs and plaques",
    "RAINY LADIES BIRTHDAY CARD": "Cards and wrap",
    "SET OF 3 CAKE TINS PANTRY DESIGN": "Cake and baking",
    "GIN AND TONIC DIET METAL SIGN": "Signs and plaques",
    "PLAYING CARDS KEEP CALM & CARRY ON": "Children's toys and games",
    "BLACK HEART CARD HOLDER": "Home decorations",  # "CARD HOLDER" is not a card
    'LETTER "C" BLING KEY RING': "Key rings and magnets",  # "KEY RING" is not jewellery
    "RED ENAMEL FLOWER RING": "Jewellery",
    "ASSORTED COLOUR BIRD ORNAMENT": "Home decorations",
    "CHILLI LIGHTS": "Lights and lamps",
    "HOT WATER BOTTLE KEEP CALM": "Hot water bottles and warmers",
    "WATERING CAN PINK BUNNY": "Easter",
    "HERB MARKER BASIL": "Garden",
    "ROUND SNACK BOXES SET OF4 WOODLAND": "Storage tins and boxes",
    "ALARM CLOCK BAKELIKE RED": "Clocks",
    "FELTCRAFT CUSHION OWL": "Cushions and textiles",
    "SWEETHEART CERAMIC TRINKET BOX": "Storage tins and boxes",
    "MEASURING TAPE BABUSHKA RED": "Sewing and crafts",
}


@pytest.mark.parametrize(("title", "theme"), EXAMPLES.items())
def test_keyword_theme(title: str, theme: str) -> None:
    assert keyword_theme(title) == theme


def test_titles_are_matched_on_whole_words_in_any_case() -> None:
    assert title_words("Hand Warmer, Union-Jack's") == " HAND WARMER UNION JACKS "
    assert keyword_theme("white hanging heart t-light holder") == "Candles and T-lights"
    # "MUGGINS" holds "MUG" but not as a word.
    assert keyword_theme("MUGGINS") is None


def test_unmatched_titles_have_no_keyword_theme() -> None:
    assert keyword_theme("RED RETROSPOT SANDWICH POUCH") is None
    assert keyword_theme("") is None


def test_taxonomy_is_well_formed() -> None:
    assert len(set(THEME_NAMES)) == len(THEME_NAMES)
    for theme in TAXONOMY:
        assert theme.keywords
        for phrase in (*theme.keywords, *theme.unless):
            # Keywords are written as title_words() spells them, so they can match.
            assert title_words(phrase) == f" {phrase} ", phrase


def unit(*rows: list[float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float32)
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)


def test_neighbours_vote_weighted_by_similarity() -> None:
    vectors = unit([1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.95, 0.05], [1, 0.05, 0], [0.1, 1, 0])
    themes = ["Garden", "Garden", "Clocks", "Clocks", None, None]
    assert neighbour_themes(vectors, themes, k=2) == [*themes[:4], "Garden", "Clocks"]
    # With k=4 every themed item votes; similarity still decides.
    assert neighbour_themes(vectors, themes, k=4)[4:] == ["Garden", "Clocks"]


def test_a_tie_goes_to_the_earlier_theme() -> None:
    vectors = unit([1, 0], [0, 1], [1, 1])
    assert THEME_NAMES.index("Easter") < THEME_NAMES.index("Garden")
    assert neighbour_themes(vectors, ["Garden", "Easter", None], k=2)[2] == "Easter"


def test_without_any_keyword_theme_no_item_gets_one() -> None:
    vectors = unit([1, 0], [0, 1])
    assert neighbour_themes(vectors, [None, None]) == [None, None]
    assert neighbour_themes(vectors, ["Clocks", "Garden"]) == ["Clocks", "Garden"]


# The shop's categories.


def test_category_levels_are_cleaned() -> None:
    assert clean_level("  Home &amp; Kitchen\t") == "Home & Kitchen"
    assert clean_level("Mugs\x00 and\ncups") == "Mugs and cups"
    long = "Extraordinarily long category names that go on and on and on"
    assert clean_level(long) == "Extraordinarily long category names that go on"
    assert len(clean_level("x" * 200)) == 48


def test_the_catalogues_separator_splits_paths() -> None:
    assert category_paths(["Home > Kitchen > Mugs", "Home > Tea/Coffee", None, " > "]) == [
        ("Home", "Kitchen", "Mugs"),
        ("Home", "Tea/Coffee"),  # a ">" catalogue keeps "/" inside names
        None,
        None,  # only separators: no category
    ]
    assert category_paths(["Home|Kitchen", "Garden"]) == [("Home", "Kitchen"), ("Garden",)]
    # An escaped separator is still one.
    assert category_paths(["Home &gt; Tea &amp; Coffee"]) == [("Home", "Tea & Coffee")]
    assert category_paths(["Home/Kitchen", "Mugs"]) == [("Home", "Kitchen"), ("Mugs",)]


def test_the_deepest_level_that_groups_several_items_is_the_theme() -> None:
    categories = [
        *["Gift Cards > Restaurants > IHOP"],  # alone at its level: its parent groups it
        *["Gift Cards > Restaurants > Pizza"] * 3,
        *["Gift Cards > Restaurants"],
        *["Gift Cards > Music > iTunes"] * 4,
        None,  # no category, no theme
        "Toys",  # its top level, the only one it has, even if alone
    ]
    assert category_themes(categories) == [
        "Restaurants",
        *["Pizza"] * 3,
        "Restaurants",
        *["iTunes"] * 4,  # the shop's casing is kept
        None,
        "Toys",
    ]


def test_a_root_every_item_shares_is_skipped() -> None:
    categories = ["All > Kitchen > Mugs", "All > Kitchen > Mugs", "All > Garden"]
    # Kitchen groups only two items (fewer than three): the top level below the root.
    assert category_themes(categories) == ["Kitchen", "Kitchen", "Garden"]
    assert category_themes(["All"] * 4) == ["All"] * 4  # a path of one level keeps it


def test_same_named_levels_of_different_branches_show_their_parent() -> None:
    categories = ["Women > Shoes"] * 3 + ["Men > Shoes"] * 3 + ["Men > Hats"] * 3
    assert category_themes(categories) == (
        ["Women > Shoes"] * 3 + ["Men > Shoes"] * 3 + ["Hats"] * 3
    )


# Themes learned from titles.

GROUPS = {  # words of each group's titles; each title adds a colour, a number and stop words
    "mug": ["Mug", "Stoneware Mug", "Mug with Handle", "Coffee Mug", "Tall Mug"],
    "teapot": ["Teapot", "Teapot for Two", "Glass Teapot", "Teapot and Strainer", "Cast Teapot"],
    "lamp": ["Desk Lamp", "LED Lamp", "Lamp Shade", "Floor Lamp", "Reading Lamp"],
}
COLOURS = ["Red", "Blue", "Green", "Grey"]


def synthetic_catalogue(seed: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """Three groups of 10 titles with title vectors clustered around one direction per group,
    and two odd items near a fourth direction; the group of each item."""
    rng = np.random.default_rng(seed)
    titles, groups, rows = [], [], []
    for axis, (group, names) in enumerate(GROUPS.items()):
        for n in range(10):
            titles.append(f"The {COLOURS[n % 4]} {names[n % 5]} of {12 * (n + 1)} cm")
            groups.append(group)
            rows.append(np.eye(8)[axis] + 0.05 * rng.standard_normal(8))
    for n in range(2):
        titles.append(f"Odd Thing {n}")
        groups.append("odd")
        rows.append(np.eye(8)[3] + 0.05 * rng.standard_normal(8))
    vectors = np.asarray(rows, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return titles, vectors, groups


def test_clusters_are_named_by_their_most_distinctive_words() -> None:
    titles, vectors, groups = synthetic_catalogue()
    assert cluster_count(len(titles)) == 4
    themes = learned_themes(titles, vectors)
    by_group = {group: {t for t, g in zip(themes, groups, strict=True) if g == group}
                for group in GROUPS}  # fmt: skip
    # One theme per group, named by the word all its titles share; not "Red", "The" or "12".
    assert by_group == {"mug": {"Mug"}, "teapot": {"Teapot"}, "lamp": {"Lamp"}}
    # The two odd items are a cluster too small to be a theme.
    assert themes[-2:] == [None, None]


def test_a_second_word_joins_the_name_when_it_is_nearly_as_distinctive() -> None:
    titles = [f"Hot Water Bottle {n}" for n in range(10)] + [f"Desk Lamp {n}" for n in range(10)]
    titles += [f"Glass Vase {n}" for n in range(10)]
    rows = np.repeat(np.eye(3), 10, axis=0) + 0.01 * np.arange(30)[:, None]
    vectors = np.asarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), dtype=np.float32)
    names = set(learned_themes(titles, vectors))
    assert len(names) == 3
    for name in names:
        assert name is not None
        # Two words from the titles; never a number or a stop word.
        first, second = name.split(" and ")
        assert {first, second} < {"Hot", "Water", "Bottle", "Desk", "Lamp", "Glass", "Vase"}


def test_learned_themes_are_deterministic_and_keep_the_shops_spelling() -> None:
    titles, vectors, _ = synthetic_catalogue()
    titles = [title.replace("Lamp", "iLamp") for title in titles]
    first = learned_themes(titles, vectors)
    assert learned_themes(titles, vectors) == first
    assert "iLamp" in first


def test_a_tiny_catalogue_learns_no_themes() -> None:
    titles, vectors, _ = synthetic_catalogue()
    small = MIN_LEARNED_ITEMS - 1
    assert cluster_count(small) == 0
    assert learned_themes(titles[:small], vectors[:small]) == [None] * small


def test_identical_titles_do_not_ask_for_more_clusters_than_there_are_points() -> None:
    vectors = np.asarray(np.repeat(np.eye(2), 15, axis=0), dtype=np.float32)
    titles = ["Red Mug"] * 15 + ["Desk Lamp"] * 15
    assert learned_themes(titles, vectors) == ["Red and Mug"] * 15 + ["Desk and Lamp"] * 15


# Choosing the source.


def test_auto_takes_categories_when_half_the_items_have_one() -> None:
    titles, vectors, _ = synthetic_catalogue()
    n = len(titles)
    half = ["Kitchen"] * (n // 2) + [None] * (n - n // 2)
    chosen = assign_themes("auto", titles, titles, half, vectors)
    assert chosen.choice == "category"
    assert chosen.themes == half
    assert chosen.sources == ["category"] * (n // 2) + ["none"] * (n - n // 2)
    # Fewer than half (blank or markup-only categories count as none): learned from titles.
    few = ["Kitchen"] * (n // 2 - 1) + ["  ", "&nbsp;"] + [None] * (n - n // 2 - 1)
    learned = assign_themes("auto", titles, titles, few, vectors)
    assert learned.choice == "learned"
    assert "Mug" in learned.themes
    assert set(learned.sources) == {"learned", "none"}


def test_none_gives_no_item_a_theme() -> None:
    titles, vectors, _ = synthetic_catalogue()
    chosen = assign_themes("none", titles, titles, ["Kitchen"] * len(titles), vectors)
    assert chosen.themes == [None] * len(titles)
    assert chosen.sources == ["none"] * len(titles)


def test_the_uk_gift_preset_uses_the_keyword_rules_and_the_vote() -> None:
    titles = ["LUNCH BAG RED RETROSPOT", "RED RETROSPOT SANDWICH POUCH", "KINGS CHOICE MUG"]
    vectors = unit([1, 0], [1, 0.1], [0, 1])
    chosen = assign_themes("uk-gift", titles, titles, [None] * 3, vectors)
    assert chosen.themes == ["Lunch bags and boxes", "Lunch bags and boxes", "Mugs and cups"]
    assert chosen.sources == ["keyword", "neighbours", "keyword"]
    unmatched = assign_themes("uk-gift", ["ZZZ"], ["Zzz"], [None], unit([1, 0]))
    assert (unmatched.themes, unmatched.sources) == ([None], ["none"])


def test_every_source_is_allowed_by_the_schema() -> None:
    check = next(
        str(c.sqltext)
        for c in item_feature.constraints
        if isinstance(c, CheckConstraint) and c.name == "ck_item_feature_theme_source"
    )
    assert tuple(re.findall(r"'([a-z]+)'", check)) == SOURCES
