"""The `uk-gift` theme preset (RECS_THEMES=uk-gift): keyword rules written for the demo shop,
the UCI Online Retail UK gift shop. `make run` selects it; any other shop gets its own categories
or learned themes (app/features/themes.py).

Two passes:

1. **Keyword rules.** `TAXONOMY` lists the themes of this gift shop in priority order. A title is
   upper-cased and split into words (apostrophes dropped, every other non-alphanumeric character
   separates words, so "T-LIGHT" reads as the words "T LIGHT"). The first theme, in `TAXONOMY`
   order, one of whose keywords (a word or a run of words) occurs in the title and none of whose
   `unless` phrases do, is the item's theme. Seasonal themes come first (a Christmas gift bag is a
   Christmas item), then specific product kinds, then broad ones, so the order settles overlaps.
2. **Neighbours.** An item no rule matches takes the theme of its nearest keyword-themed items in
   MiniLM title-embedding space: the `NEIGHBOURS` most cosine-similar ones vote, each with weight
   equal to its similarity; the heaviest theme wins, ties going to the earlier theme in
   `TAXONOMY`. When no item of the catalogue matches a rule, no item gets a theme.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

NEIGHBOURS = 5


@dataclass(frozen=True)
class Theme:
    name: str
    keywords: tuple[str, ...]
    unless: tuple[str, ...] = ()


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


TAXONOMY: tuple[Theme, ...] = (
    Theme(
        "Christmas decorations",
        _words(
            "CHRISTMAS XMAS NOEL ADVENT REINDEER SANTA SANTAS SNOWMAN SNOWFLAKE SNOWFLAKES"
            " BAUBLE BAUBLES NATIVITY SLEIGH SLEIGHBELL TINSEL MISTLETOE ROBIN STOCKING"
        ),
    ),
    Theme("Easter", _words("EASTER CHICK CHICKS BUNNY BUNNIES")),
    Theme("Lunch bags and boxes", ("LUNCH BAG", "LUNCH BOX", "LUNCHBOX", "SNACK BOX")),
    Theme(
        "Hot water bottles and warmers",
        ("HOT WATER BOTTLE", "HOT WATER BOTTLES", "HAND WARMER", "WARMER", "HEAT PACK"),
    ),
    Theme(
        "Party and bunting",
        (
            *_words(
                "PARTY BUNTING NAPKINS NAPKIN BALLOON BALLOONS CONFETTI STRAWS CRACKER CRACKERS"
            ),
            *("PAPER PLATES", "PAPER PLATE", "PAPER CUPS", "PAPER CUP", "PAPER CHAIN"),
            *("COCKTAIL", "DOILIES", "PLACE SETTING", "PLACE SETTINGS", "CAKE CANDLES", "FLAG"),
            *("FAN", "FLAGS", "DISCO BALL", "PENNANT"),
        ),
    ),
    Theme(
        "Cake and baking",
        (
            *("CAKE CASES", "CAKE CASE", "CAKE STAND", "CAKE TIN", "CAKE TINS", "CAKE MOULD"),
            *_words("BAKING CUPCAKE CUPCAKES COOKIE CUTTER CUTTERS MUFFIN ICING JELLY MOULD"),
            *("RECIPE", "CAKE PLATE", "CAKE FORKS", "CAKESTAND", "PETIT FOUR CASES", "CAKE SLICE"),
        ),
    ),
    Theme(
        "Candles and T-lights",
        (
            *_words("CANDLE CANDLES CANDLEHOLDER CANDLESTICK TLIGHT TLIGHTS TEALIGHT TEALIGHTS"),
            *_words("LANTERN LANTERNS VOTIVE CANDELABRA CANDLEPOT CANDLEPOTS CANDLESTAND"),
            *_words("CANDLEHLDR SCENTCANDLE CHOCOLATECANDLE PAPERLANTERNS MATCHES LIGHTERS"),
            *("T LIGHT", "T LIGHTS", "TEA LIGHT", "TEA LIGHTS", "LIGHT HOLDER"),
        ),
    ),
    Theme(
        "Incense and fragrance",
        _words("INCENSE SACHET SACHETS FRAGRANCE POTPOURRI DIFFUSER BURNER OIL SCENTED SCENT"),
    ),
    Theme(
        "Jewellery",
        (
            *_words("NECKLACE NECKLACES NECKL BRACELET BRACELETS BANGLE BANGLES EARRINGS"),
            *_words("PENDANT BROOCH JEWELLERY JEWEL CHOKER ANKLET TIARA CHARM CHARMS"),
            *_words(
                "HAIRCLIP HAIRCLIPS HAIRBAND HAIRBANDS HAIRSLIDE SCRUNCHIE NECKLAC EARRING LARIAT"
            ),
            *("BEAD CHAIN", "DIAMANTE CHAIN"),
            *("HAIR", "RING"),
        ),
        unless=("KEY RING", "NAPKIN RING", "CANDLE RING"),
    ),
    Theme(
        "Lights and lamps",
        (
            *_words("LIGHTS LAMP LAMPS LAMPSHADE CHANDELIER NIGHTLIGHT LIGHTBULB LED TORCH"),
            *("LIGHT CHAIN", "NIGHT LIGHT", "TABLE LIGHT", "LIGHT GARLAND", "STRING LIGHTS"),
        ),
    ),
    Theme("Clocks", _words("CLOCK CLOCKS")),
    Theme(
        "Bags and purses",
        (
            *_words("BAG BAGS PURSE PURSES HANDBAG TOTE SHOPPER BACKPACK RUCKSACK WALLET"),
            *_words("WASHBAG SATCHEL HOLDALL"),
        ),
        unless=("GIFT BAG", "GIFT BAGS", "PEG BAG"),
    ),
    Theme(
        "Children's toys and games",
        (
            *_words("TOY TOYS GAME GAMES JIGSAW PUZZLE DOLL DOLLS DOLLHOUSE SKITTLES KITE"),
            *_words("TEDDY DOMINOES DOMINO YOYO MARBLES PLAYHOUSE SPINNING"),
            *("PLAYING CARDS", "SOFT TOY", "DRAWING SLATE", "WATER PISTOL", "BUBBLES"),
            *_words("TATTOOS WINDMILL RATTLE PUPPET KALEIDOSCOPE BADGES HELICOPTER INFLATABLE"),
            *("CREEPY CRAWLIES", "CREEPY CRAWLIE", "GLOW IN DARK", "NAUGHTS CROSSES"),
            *("JACOBS LADDER", "COLOURING", "STENCIL", "LUDO", "SNAKES LADDERS", "SKIPPING ROPE"),
            *("RACING CAR", "ROCKING HORSE", "MODELLING CLAY", "PAINT SET", "FARM ANIMAL"),
            *("PIGGY BANK", "MONEY BANK", "GIFT SET", "LOLLY MAKERS"),
        ),
        unless=("DOORSTOP",),
    ),
    Theme(
        "Cards and wrap",
        (
            *_words("CARD CARDS WRAP WRAPS ENVELOPE ENVELOPES TAGS"),
            *("GIFT TAG", "GIFT BAG", "GIFT BAGS", "GIFT WRAP", "TISSUE PAPER", "WRAPPING"),
        ),
        unless=("CARD HOLDER", "CARD WALLET", "CARD KIT"),
    ),
    Theme(
        "Stationery",
        (
            *_words("NOTEBOOK NOTEBOOKS NOTEPAD NOTEPADS PENCIL PENCILS PEN PENS RULER ERASER"),
            *_words("ERASERS DIARY CALENDAR STICKERS STICKER STATIONERY JOURNAL SHARPENER"),
            *_words("HIGHLIGHTER CRAYONS CHALK MEMO BOOKMARK SKETCHBOOK MEMOBOARD BLACKBOARD"),
            *_words("CHALKBOARD CALCULATOR PAPERWEIGHT POSTCARD BOOKCOVER TAPE STAMP"),
            *("HOLE PUNCH", "POCKET BOOK", "OFFICE TIDY", "LETTER HOLDER", "RUBBER", "TAPES"),
            *("EXERCISE BOOK", "EXERCISE BOOKS", "SCRAP BOOK"),
            *("NOTE BOOK", "ADDRESS BOOK", "PENCIL CASE", "WRITING SET", "TO DO LIST"),
        ),
        unless=("MEASURING TAPE", "TAPE MEASURE"),
    ),
    Theme(
        "Mugs and cups",
        (
            *_words("MUG MUGS BEAKER BEAKERS TEACUP TEACUPS"),
            *("CUP AND SAUCER", "CUP SAUCER", "CUPS AND SAUCERS"),
        ),
    ),
    Theme(
        "Kitchen and dining",
        (
            *_words("PLATE PLATES BOWL BOWLS DISH DISHES TRAY TRAYS JUG TEAPOT COASTER"),
            *_words("COASTERS PLACEMAT PLACEMATS CUTLERY APRON SPOON SPOONS CHOPSTICKS"),
            *_words("KITCHEN PANTRY PAN SAUCEPAN TUMBLER TUMBLERS GOBLET GOBLETS FLASK"),
            *_words("SAUCER CUP CUPS BOTTLE TOWEL COLANDER SIEVE WHISK GRATER TIMER SCALES"),
            *_words("TEASPOONS FORK FORKS KNIFE KNIVES BREADBOARD CAFETIERE"),
            *("EGG CUP", "TEA COSY", "TEA TOWEL", "OVEN GLOVE", "CHOPPING BOARD"),
            *("WINE GLASS", "DRINKING GLASS", "CHAMPAGNE GLASS", "SUGAR BOWL", "JAM JAR"),
            *("WASHING UP", "BUTTER DISH", "BREAD BIN", "TEA SET", "PICNIC", "FOOD COVER"),
            *_words("SQUEEZER LADLE TONGS TOASTRACK TABLECLOTH UTENSIL CHALICE COFFEE"),
            *("EGG HOLDER", "MILKSHAKE GLASS", "EGG COSY", "TEA GLASS", "SALT AND PEPPER"),
            *_words("STRAINER SERVERS DISPENSER PLATTER MITT POPCORN APERITIF FRUITBOWL FOODCOVER"),
            *("ICE LOLLY", "COOKING SET", "BREAKFAST SET", "JAM MAKING"),
            *("TEA TOWELS", "TABLE CLOTH", "TABLECLOTH", "TABLE RUN"),
        ),
        unless=("SOAP DISH", "BATHROOM"),
    ),
    Theme(
        "Storage tins and boxes",
        (
            *_words("TIN TINS STORAGE BOX BOXES JAR JARS BASKET BASKETS HAMPER CHEST CRATE"),
            *_words("CONTAINER CONTAINERS TRUNK CADDY BUCKET BUCKETS BIN CASE"),
        ),
    ),
    Theme(
        "Bath and beauty",
        (
            *_words("BATHROOM BATH SOAP SPONGE FLANNEL TOILET TOOTHBRUSH SHOWER TOWELS TISSUES"),
            *_words("COSMETIC MAKEUP NAIL PERFUME HENNA BALM"),
            "LIP GLOSS",
        ),
        unless=("BIRD BATH",),
    ),
    Theme(
        "Garden",
        (
            *_words("GARDEN GARDENERS PLANT PLANTS PLANTER PLANTPOT BIRDHOUSE SECATEURS TROWEL"),
            *_words("SPADE RAKE GNOME THERMOMETER FEEDER GREENHOUSE SEEDS FLOWERPOT POTS"),
            *_words(
                "PLANTERS BIRDFEEDER HAMMOCK URN CHIME CHIMES WINDCHIME TWINE WHEELBARROW PAIL"
            ),
            *("HERB MARKER", "POTTING", "WASP CATCHER"),
            *(
                "WATERING CAN",
                "BIRD FEEDER",
                "BIRD TABLE",
                "PLANT POT",
                "FLOWER POT",
                "GROW YOUR OWN",
            ),
        ),
    ),
    Theme(
        "Cushions and textiles",
        (
            *_words("CUSHION CUSHIONS THROW BLANKET QUILT CURTAIN RUG PATCHWORK DOORSTOP"),
            *("C COVER", "FILLER PAD"),
        ),
    ),
    Theme("Doormats", _words("DOORMAT DOORMATS MAT MATS")),
    Theme(
        "Signs and plaques",
        (*_words("SIGN SIGNS PLAQUE PLAQUES DOORSIGN"), "DOOR HANGER", "NUMBER TILE"),
    ),
    Theme(
        "Photo frames and albums",
        (*_words("FRAME FRAMES PHOTOFRAME ALBUM ALBUMS"), "P FRAME", "PHOTO CLIP"),
    ),
    Theme("Wall art", ("WALL ART", "CANVAS", "PICTURE")),
    Theme("Mirrors", _words("MIRROR MIRRORS")),
    Theme(
        "Hooks and drawer knobs",
        (*_words("HOOK HOOKS KNOB KNOBS DRAWERKNOB HANGER HANGERS RACK PEG PEGS"), "KEY HOLDER"),
    ),
    Theme(
        "Key rings and magnets",
        (*_words("KEYRING KEYRINGS MAGNET MAGNETS"), "KEY RING", "KEY FOB"),
    ),
    Theme(
        "Furniture",
        (
            *_words("CHAIR CHAIRS STOOL STOOLS SHELF SHELVES CABINET CABINETS DESK DRAWERS"),
            *_words("CUPBOARD SIDEBOARD BENCH DRESSER POUFFE"),
            *("OCCASIONAL TABLE", "SIDE TABLE", "KASHMIRI TABLE", "STEEL TABLE"),
            "LOVE SEAT",
        ),
    ),
    Theme(
        "Sewing and crafts",
        (
            *_words("SEWING KNITTING CRAFT FELTCRAFT RIBBON RIBBONS KIT BUTTONS SCISSOR SCISSORS"),
            *("TAPE MEASURE", "MEASURING TAPE", "SEW ON", "IRON ON"),
        ),
    ),
    Theme(
        "Clothing and accessories",
        (
            *_words("SLIPPER SLIPPERS SOCK SOCKS SCARF MUFF MUFFS BIB OVERALL HAT GLOVES MITTENS"),
            *_words("SUNGLASSES SUNHAT PONCHO MAC JUMPER"),
        ),
    ),
    Theme("Travel accessories", _words("LUGGAGE PASSPORT TRAVEL")),
    Theme(
        "Household and laundry",
        (*_words("LAUNDRY IRONING DUSTER TIDY ORGANISER SWAT PEG DOORBELL"), "TOOL SET"),
    ),
    Theme("Umbrellas", _words("UMBRELLA UMBRELLAS PARASOL")),
    Theme(
        "Home decorations",
        (
            *_words("DECORATION DECORATIONS HANGING ORNAMENT WREATH GARLAND BELL BELLS MOBILE"),
            *_words("HEART HEARTS LETTERS FIGURE CARDHOLDER"),
            *("FLYING DUCKS", "CARD HOLDER"),
        ),
    ),
    Theme(
        "Vases and flowers",
        (*_words("VASE VASES BOUQUET POSY"), "ARTIFICIAL FLOWER", "ART FLOWER"),
    ),
)

THEME_NAMES: tuple[str, ...] = tuple(theme.name for theme in TAXONOMY)

_SEPARATORS = re.compile(r"[^A-Z0-9]+")


def title_words(title: str) -> str:
    """The title as upper-case words separated by single spaces, padded with a space each side."""
    words = _SEPARATORS.split(title.upper().replace("'", ""))
    return " " + " ".join(word for word in words if word) + " "


def keyword_theme(title: str) -> str | None:
    """The theme of the first rule in TAXONOMY the title matches, or None."""
    text = title_words(title)
    for theme in TAXONOMY:
        if any(f" {phrase} " in text for phrase in theme.unless):
            continue
        if any(f" {keyword} " in text for keyword in theme.keywords):
            return theme.name
    return None


def neighbour_themes(
    vectors: npt.NDArray[np.float32],
    themes: Sequence[str | None],
    k: int = NEIGHBOURS,
) -> list[str | None]:
    """Fill the None entries of `themes` by a similarity-weighted vote of the k most similar
    themed items. `vectors` are unit-length rows, one per entry of `themes`. With no themed
    item at all there is no one to vote, and the entries stay None."""
    known = {item: theme for item, theme in enumerate(themes) if theme is not None}
    missing = [item for item, theme in enumerate(themes) if theme is None]
    if not known or not missing:
        return list(themes)
    priority = {name: rank for rank, name in enumerate(THEME_NAMES)}
    names = sorted(set(known.values()), key=lambda name: priority.get(name, len(priority)))
    labelled = list(known)
    labels = np.array([names.index(known[item]) for item in labelled])
    similarity = vectors[missing] @ vectors[labelled].T
    # The k most similar themed items; a stable sort keeps catalogue order among equals.
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    result: dict[int, str | None] = dict(known)
    for row, item in enumerate(missing):
        votes = np.zeros(len(names))
        np.add.at(votes, labels[nearest[row]], similarity[row, nearest[row]])
        # argmax picks the first maximum: a tie goes to the theme earlier in TAXONOMY.
        result[item] = names[int(np.argmax(votes))]
    return [result[item] for item in range(len(themes))]
