"""The keyword taxonomy on real titles, and the neighbour vote for titles no rule matches."""

import numpy as np
import pytest

from app.features.themes import (
    FALLBACK_THEME,
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
    assert FALLBACK_THEME not in THEME_NAMES
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


def test_without_any_keyword_theme_every_item_gets_the_fallback() -> None:
    vectors = unit([1, 0], [0, 1])
    assert neighbour_themes(vectors, [None, None]) == [FALLBACK_THEME, FALLBACK_THEME]
    assert neighbour_themes(vectors, ["Clocks", "Garden"]) == ["Clocks", "Garden"]
