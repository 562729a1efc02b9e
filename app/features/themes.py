"""A readable theme for each item, from the shop's own data (RECS_THEMES picks the source).

- **category**: the shop's `item.category`, a path such as "Kitchen > Mugs" or one level. The
  catalogue's separator is the first of ">", "|", "/" that any of its categories holds (so a
  "/" inside a level name survives in a ">" catalogue). Each level is cleaned: HTML entities
  decoded, control characters dropped, whitespace collapsed, capped at `MAX_LEVEL_CHARS` at a
  word boundary. Leading levels that every categorised item shares are skipped (a root such as
  "All products" says nothing). An item's theme is the deepest level of its path that at least
  `MIN_THEME_ITEMS` items share, else its top level; when two chosen levels of different
  branches have the same name ("Women > Shoes", "Men > Shoes"), both show their parent too.
  An item without a category gets no theme: a guessed category would be stated as a fact.
- **learned**: k-means over the MiniLM title vectors (k about sqrt(items / 2), seeded), each
  cluster named by its most distinctive words, c-TF-IDF style: the share of the cluster's titles
  holding a word times log(1 + mean words per cluster / the word's count in all clusters), so a
  word frequent in the cluster and rare elsewhere wins. Words are letters only (no numbers), not
  English stop words, and in at least two of the cluster's titles; a name is the best word, and
  the next one when it scores at least half as much ("Mug and Teapot"), each written as the
  titles most often spell it. A catalogue of fewer than `MIN_LEARNED_ITEMS` items, a cluster of
  fewer than `MIN_THEME_ITEMS` and a cluster with no such word get no theme.
- **auto**: category when at least `AUTO_CATEGORY_SHARE` of the items carry one, else learned.
- **none**: no item has a theme.
- **uk-gift**: the demo shop's keyword rules and neighbour vote (app/features/uk_gift.py).

An item without a theme has `item.theme` NULL and so no theme evidence.
"""

import html
import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from app.config import ThemeChoice
from app.features import uk_gift

# How an item's theme was chosen (item_feature.theme_source; its CHECK lists the same).
ThemeSource = Literal["category", "learned", "keyword", "neighbours", "none"]
SOURCES: tuple[ThemeSource, ...] = get_args(ThemeSource)

MIN_THEME_ITEMS = 3  # a theme groups at least this many items (below it: a parent, or none)
MIN_LEARNED_ITEMS = 20  # fewer titles are too few to cluster
MAX_LEARNED_THEMES = 60
# A second word joins a learned name only when it scores at least this share of the first.
SECOND_WORD_SHARE = 0.5
AUTO_CATEGORY_SHARE = 0.5  # auto: categories when at least this share of items has one
MAX_LEVEL_CHARS = 48
SEPARATORS = (">", "|", "/")  # in this order of preference: the first a catalogue uses
SEED = 0

_WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters: no numbers, no underscores


@dataclass(frozen=True)
class Themes:
    """The theme of each item (None: no theme) and how it was chosen, in the input's order;
    `choice` is the source used (auto resolved to category or learned)."""

    choice: ThemeChoice
    themes: list[str | None]
    sources: list[ThemeSource]


def assign_themes(
    choice: ThemeChoice,
    titles: Sequence[str],
    display_titles: Sequence[str],
    categories: Sequence[str | None],
    vectors: npt.NDArray[np.float32],
) -> Themes:
    """The themes of a catalogue: per item its source title, display title, category and unit
    MiniLM title vector (rows of `vectors`)."""
    if choice == "auto":
        carried = sum(path is not None for path in category_paths(categories))
        enough = bool(categories) and carried >= AUTO_CATEGORY_SHARE * len(categories)
        choice = "category" if enough else "learned"
    if choice == "category":
        return _labelled(choice, category_themes(categories), "category")
    if choice == "learned":
        return _labelled(choice, learned_themes(display_titles, vectors), "learned")
    if choice == "uk-gift":
        by_keyword = [uk_gift.keyword_theme(title) for title in titles]
        themes = uk_gift.neighbour_themes(vectors, by_keyword)
        sources: list[ThemeSource] = [
            "keyword" if keyword else "neighbours" if theme else "none"
            for keyword, theme in zip(by_keyword, themes, strict=True)
        ]
        return Themes(choice, themes, sources)
    return _labelled(choice, [None] * len(titles), "none")


def _labelled(choice: ThemeChoice, themes: list[str | None], source: ThemeSource) -> Themes:
    return Themes(choice, themes, [source if theme else "none" for theme in themes])


def clean_level(text: str) -> str:
    """One category level as shown: entities decoded, control characters dropped, whitespace
    collapsed, at most MAX_LEVEL_CHARS (cut at a word boundary when there is one)."""
    text = html.unescape(text)
    text = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    text = " ".join(text.split())
    if len(text) > MAX_LEVEL_CHARS:
        cut = text[: MAX_LEVEL_CHARS + 1].rsplit(" ", 1)[0]
        text = cut if 0 < len(cut) <= MAX_LEVEL_CHARS else text[:MAX_LEVEL_CHARS]
        text = text.rstrip(" ,;:-&/")
    return text


def category_paths(categories: Sequence[str | None]) -> list[tuple[str, ...] | None]:
    """Each category as its cleaned levels, top first (None: no category)."""
    # Entities first: an exported "Home &gt; Kitchen" is a path.
    decoded = [html.unescape(category) if category else "" for category in categories]
    separator = next((s for s in SEPARATORS if any(s in category for category in decoded)), None)
    paths: list[tuple[str, ...] | None] = []
    for category in decoded:
        parts = category.split(separator) if separator else [category]
        levels = tuple(level for level in map(clean_level, parts) if level)
        paths.append(levels or None)
    return paths


def category_themes(categories: Sequence[str | None]) -> list[str | None]:
    """The theme of each item from its category (see the module's docstring)."""
    paths = category_paths(categories)
    present = [path for path in paths if path is not None]
    skip = 0
    while (
        present
        and all(len(path) > skip + 1 for path in present)
        and len({path[skip] for path in present}) == 1
    ):
        skip += 1
    trimmed = [None if path is None else path[skip:] for path in paths]
    sharing = Counter(path[:depth] for path in trimmed if path for depth in range(1, len(path) + 1))
    chosen: list[tuple[str, ...] | None] = []
    for path in trimmed:
        if path is None:
            chosen.append(None)
            continue
        depths = range(len(path), 0, -1)
        depth = next((d for d in depths if sharing[path[:d]] >= MIN_THEME_ITEMS), 1)
        chosen.append(path[:depth])
    branches: defaultdict[str, set[tuple[str, ...]]] = defaultdict(set)
    for level in chosen:
        if level is not None:
            branches[level[-1]].add(level)

    def shown(level: tuple[str, ...]) -> str:
        return " > ".join(level[-2:]) if len(branches[level[-1]]) > 1 else level[-1]

    return [None if level is None else shown(level) for level in chosen]


def cluster_count(items: int) -> int:
    """How many clusters a catalogue of `items` titles is cut into (0: too few to learn)."""
    if items < MIN_LEARNED_ITEMS:
        return 0
    return min(MAX_LEARNED_THEMES, max(2, round(math.sqrt(items / 2))))


def learned_themes(titles: Sequence[str], vectors: npt.NDArray[np.float32]) -> list[str | None]:
    """Themes learned by clustering the title vectors (see the module's docstring)."""
    clusters = cluster_count(len(titles))
    if clusters == 0:
        return [None] * len(titles)
    # Fewer distinct titles than clusters would leave clusters empty.
    clusters = min(clusters, len(np.unique(vectors, axis=0)))
    labels = KMeans(n_clusters=clusters, n_init=4, random_state=SEED).fit_predict(vectors)
    names = cluster_names(titles, labels.tolist())
    return [names.get(label) for label in labels.tolist()]


def title_words(title: str) -> list[str]:
    """The words of a title that may name a theme, as written, each once (in any case)."""
    words: dict[str, str] = {}
    for word in _WORD.findall(html.unescape(title)):
        if word.casefold() not in ENGLISH_STOP_WORDS:
            words.setdefault(word.casefold(), word)
    return list(words.values())


def cluster_names(titles: Sequence[str], labels: Sequence[int]) -> dict[int, str]:
    """A name for each cluster of at least MIN_THEME_ITEMS titles that has a distinctive word."""
    held: defaultdict[int, Counter[str]] = defaultdict(Counter)  # titles holding each word
    spelt: defaultdict[str, Counter[str]] = defaultdict(Counter)  # how titles write each word
    sizes = Counter(labels)
    for title, label in zip(titles, labels, strict=True):
        for word in title_words(title):
            held[label][word.casefold()] += 1
            spelt[word.casefold()][word] += 1
    overall: Counter[str] = Counter()
    for counts in held.values():
        overall.update(counts)
    mean_words = sum(overall.values()) / max(1, len(sizes))
    names: dict[int, str] = {}
    for label, size in sizes.items():
        if size < MIN_THEME_ITEMS:
            continue
        # Best first; a stable sort leaves equal scores in the order the titles first use them.
        scored = sorted(
            (
                ((count / size) * math.log(1 + mean_words / overall[word]), word)
                for word, count in held[label].items()
                if count >= 2
            ),
            key=lambda pair: -pair[0],
        )
        chosen: list[tuple[float, str]] = []
        for score, word in scored:
            if chosen and score < SECOND_WORD_SHARE * chosen[0][0]:
                break
            if any(_plural_pair(word, other) for _, other in chosen):
                continue
            chosen.append((score, word))
            if len(chosen) == 2:
                break
        if chosen:
            shown = [spelt[word].most_common(1)[0][0] for _, word in chosen]
            # Capitalise a word only when the shop wrote it in lower case ("iPad" stays).
            if shown[0].islower():
                shown[0] = shown[0].capitalize()
            names[label] = " and ".join(shown)
    return names


def _plural_pair(word: str, other: str) -> bool:
    """Whether one word is the other's plural ("mug", "mugs"): as a name's second word it
    would add nothing."""
    short, long = sorted((word, other), key=len)
    return long in (short + "s", short + "es")
