"""The guard on every language-model reason: each product, number, country, theme and month it
mentions must be in the evidence, and its form must fit a product card. A reason with any
problem is not served (the template sentence is, and the rejection is counted).

`unsupported_claims` checks each sentence's kinds of claim (purchases, repeat buying,
co-purchase, popularity, price, theme) against the kinds of fact; the guard applies it too, and
the reasons benchmark reports it on its own.
"""

import re
from dataclasses import dataclass, field

from app.reasons.prompt import SLOT, Slots, display_name
from app.schemas import Fact

MAX_WORDS = 40
MONTHS = (
    "january february march april may june july august september october november december"
).split()
COUNTRY_ALIASES = {"uk": "United Kingdom", "britain": "United Kingdom", "england": "United Kingdom"}
MULTIPLES = {"once": 1, "twice": 2, "thrice": 3}
NUMBER_WORDS = dict(
    zip(
        "two three four five six seven eight nine ten eleven twelve".split(),
        range(2, 13),
        strict=True,
    )
)
NUMBER = re.compile(r"£?\d[\d,]*(?:\.\d+)?")
CHEAPER = re.compile(
    r"\b(cheaper|bargain|budget|saving|lower price|less than (your|what|the usual))\b|"
    r"\bbelow (your|what|the usual)|\beasy on the budget"
)
PRICIER = re.compile(
    r"\b(pricier|more expensive|splurge|premium|step up|higher price|"
    r"more than (your|what|the usual)|above (your|what|the usual))\b"
)
UNSAFE = re.compile(
    r"https?:|www\.|[<>{}\\]|@\w|\b(kill|die|hate|sex|drugs?|gun|stupid|idiot|damn|hell)\b",
    re.IGNORECASE,
)
# A number's role, told by the words around it: each must match a fact's number of that role
# ("your usual gap is 9%" holds a number from the evidence, but not a gap).
ROLES: dict[str, re.Pattern[str]] = {
    "share": re.compile(r"(\d[\d.]*)\s*%"),
    "lift": re.compile(r"(\d[\d.]*)\s*x\b|(\d[\d.]*) times (more|as|the usual|over)\b"),
    "days": re.compile(r"(\d[\d,]*) days?\b"),
    "count": re.compile(r"(\d[\d,]*) (times|orders?|baskets?)\b(?! (more|as|the usual|over)\b)"),
    "rank": re.compile(r"\b(?:number|ranked|top|no\.|#) ?(\d+)\b"),
    "other time": re.compile(r"(\d[\d,]*) (hours?|weeks?|months?|years?)\b"),
}
ENGLISH = re.compile(r"\b(the|you|your|it|this|in|of|a|with|and|for|to|is|at)\b", re.IGNORECASE)


def shingles(text: str, n: int = 3) -> set[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Vocabulary:
    """What a reason could name that the evidence may not hold: every country, theme and
    product title (as 3-word shingles) the shop knows."""

    countries: frozenset[str]
    themes: frozenset[str]
    title_shingles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, countries: set[str], themes: set[str], titles: list[str]) -> "Vocabulary":
        shingled: set[str] = set()
        for title in titles:
            shingled |= shingles(display_name(title))
        return cls(frozenset(countries), frozenset(themes), frozenset(shingled))


def role_numbers(facts: list[Fact]) -> dict[str, set[float]]:
    """The evidence's numbers by role: those of ROLES, plus "price" (the item's and the usual)
    and "other" (buyers, the year of a month). The evidence counts time in days only."""
    roles: dict[str, set[float]] = {role: set() for role in (*ROLES, "price", "other")}
    for fact in facts:
        d = fact.data
        for key, role in (
            ("times_bought", "count"), ("orders", "count"), ("baskets", "count"),
            ("every_days", "days"), ("days_since", "days"), ("rank", "rank"), ("buyers", "other"),
        ):  # fmt: skip
            if d.get(key) is not None:
                roles[role].add(float(d[key]))
        if fact.kind == "co_purchase":
            roles["share"].add(float(round(100 * d["confidence"])))
            roles["lift"].add(round(float(d["lift"]), 1))
        if fact.kind == "price":
            roles["price"] |= {round(float(d["price"]), 2), round(float(d["usual"]), 2)}
        if fact.kind == "popularity":
            roles["other"].add(float(str(d["month"]).split()[-1]))  # the year
    return roles


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", text) is not None


def check(
    text: str, finished: bool, facts: list[Fact], slots: Slots, vocabulary: Vocabulary
) -> list[str]:
    """Problems with a generated reason (written with slots, before they are filled); empty
    when it may be served."""
    problems: list[str] = []
    if not finished:
        problems.append("cut off: generation did not end by itself")
    stripped = text.strip()
    if not stripped:
        return [*problems, "empty"]
    words = stripped.split()
    if len(words) > MAX_WORDS:
        problems.append(f"{len(words)} words, more than {MAX_WORDS}")
    sentences = re.findall(r"[.!?](?=\s|$)", stripped)
    if not 1 <= len(sentences) <= 2 or stripped[-1] not in ".!?":
        problems.append("not one or two whole sentences")
    if UNSAFE.search(stripped):
        problems.append("unsafe or markup text")
    if any(ord(c) > 127 and c != "£" for c in stripped) or not ENGLISH.search(stripped):
        problems.append("not plain English")
    for number in SLOT.findall(stripped):
        if int(number) not in slots.names:
            problems.append(f"[ITEM{number}] is not in the evidence")
    plain = SLOT.sub(" ", stripped).lower()
    problems += _numbers(plain, facts)
    problems += _names(plain, facts, vocabulary)
    problems += _price_direction(plain, facts)
    problems += [f"unsupported claim of {c}" for c in unsupported_claims(stripped, facts)]
    return problems


def _numbers(plain: str, facts: list[Fact]) -> list[str]:
    by_role = role_numbers(facts)
    allowed = set().union(*by_role.values())
    problems = []
    for raw in NUMBER.findall(plain):
        value = float(raw.lstrip("£").replace(",", ""))
        if round(value, 2) not in allowed:
            problems.append(f"number {raw} is not in the evidence")
    counts = [n for word, n in MULTIPLES.items() if _mentions(plain, word)]
    counts += [n for word, n in NUMBER_WORDS.items() if re.search(rf"\b{word} times\b", plain)]
    problems += [f"count {n} is not in the evidence" for n in counts if float(n) not in allowed]
    for role, pattern in ROLES.items():
        for match in pattern.finditer(plain):
            raw = next(group for group in match.groups() if group and group[0].isdigit())
            if float(raw.rstrip(".").replace(",", "")) not in by_role[role]:
                problems.append(f"{match.group(0)!r}: no {role} of the evidence is {raw}")
    return problems


def _names(plain: str, facts: list[Fact], vocabulary: Vocabulary) -> list[str]:
    problems = []
    countries = {str(f.data["country"]) for f in facts if "country" in f.data}
    mentioned = {c for c in vocabulary.countries | countries if _mentions(plain, c)}
    mentioned |= {full for alias, full in COUNTRY_ALIASES.items() if _mentions(plain, alias)}
    problems += [f"country {c} is not in the evidence" for c in sorted(mentioned - countries)]
    themes = {str(f.data["theme"]) for f in facts if "theme" in f.data}
    problems += [
        f"theme {t} is not in the evidence"
        for t in sorted(vocabulary.themes - themes)
        if _mentions(plain, t)
    ]
    months = {str(f.data["month"]).split()[0].lower() for f in facts if "month" in f.data}
    problems += [
        f"month {m} is not in the evidence"
        for m in MONTHS
        if m not in months and _mentions(plain, m)
    ]
    titles: set[str] = set(vocabulary.title_shingles)
    for fact in facts:
        if "title" in fact.data:
            titles |= shingles(display_name(str(fact.data["title"])))
    if shingles(plain) & titles:
        problems.append("names a product in words instead of its slot")
    return problems


def _price_direction(plain: str, facts: list[Fact]) -> list[str]:
    positions = {str(f.data["position"]) for f in facts if f.kind == "price"}
    problems = []
    if CHEAPER.search(plain) and "below" not in positions:
        problems.append("calls it cheaper, but the evidence does not")
    if PRICIER.search(plain) and "above" not in positions:
        problems.append("calls it pricier, but the evidence does not")
    return problems


# Claim-by-claim faithfulness: each kind of claim a sentence can make, and the facts that
# support it.
CLAIMS: dict[str, tuple[re.Pattern[str], set[str]]] = {
    "your purchases": (
        re.compile(r"\byou (have )?(bought|ordered|buy|reorder)|\byour (\[item|last order)"),
        {"anchor", "repurchase", "co_purchase", "shared_theme"},
    ),
    # Every way the guide words this item's own buying history (its repurchase phrasings).
    "a repeat purchase": (
        re.compile(
            r"\b(restock|top-up|reorder|again|regular of yours|favourites?\b.*orders"
            r"|back for more|running low|usual gap|on schedule|every \d+ days|past pick"
            r"|(ordered|bought) (this|it) (before|once)|last ordered|since you last"
            r"|your last order|keep coming back)"
        ),
        {"repurchase"},
    ),
    "bought together": (
        re.compile(r"\b(together|alongside|partner|pairs|orders with|% of|add this)\b"),
        {"co_purchase"},
    ),
    "popularity": (
        re.compile(r"\b(popular|favourite in|best seller|most bought|number \d+|ranked|top \d+)"),
        {"popularity"},
    ),
    "price": (re.compile(r"£|\b(spend|price|pay|costs?)\b"), {"price"}),
    "theme": (re.compile(r"\b(range|theme|more from)\b"), {"shared_theme"}),
}


def unsupported_claims(text: str, facts: list[Fact]) -> list[str]:
    """Each sentence's claims that no fact of the right kind supports."""
    kinds = {fact.kind for fact in facts}
    unsupported = []
    for sentence in re.split(r"(?<=[.!?])\s+", text.strip()):
        lowered = sentence.lower()
        for claim, (pattern, supporters) in CLAIMS.items():
            if pattern.search(lowered) and not kinds & supporters:
                unsupported.append(f"{claim}: {sentence}")
    return unsupported
