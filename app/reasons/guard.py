"""The guard on every written reason: a reason with any problem is not served (the template
sentence is, and the rejection is counted).

It judges the sentence twice. Written with slots (app/reasons/slots.py), each sentence must
hold no value of its own (no digits, counts in words, names, places, months or currency), only
slots its facts bind, each slot where it belongs (an item's order count beside that item, the
recommended item's own numbers never in a clause about another item), claims only of kinds
the facts support, and only the state words the facts' states allow ("due" only when due).
Filled, it must fit a product card: short, printable, no markup or links.

`unsupported_claims` checks each sentence's kinds of claim against the kinds of fact; the
reasons benchmark reports it on its own.
"""

import re
import unicodedata
from dataclasses import dataclass, field

from app.reasons.sanitise import clean
from app.reasons.slots import KIND_OF, SLOT, Binding, slots_in
from app.schemas import Fact

MAX_WORDS = 40
MONTHS = (
    "january february march april may june july august september october november december"
).split()
NUMBER_WORDS = re.compile(
    r"\b(once|twice|thrice|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"
    r"|dozen|hundred|half|double|triple)\b"
)
CURRENCY_CODE = re.compile(r"\b[A-Z]{3}\b")
CHEAPER = re.compile(
    r"\b(cheaper|bargain|budget|saving|lower price|less than)\b|\bbelow (your|what|the)"
)
PRICIER = re.compile(
    r"\b(pricier|more expensive|splurge|premium|step up|higher price|more than)\b"
    r"|\babove (your|what|the)"
)
CLOSER = re.compile(r"\b(close to|in line with|about what you|about your usual)\b")
UNSAFE = re.compile(
    r"https?:|www\.|[<>{}\\]|@\w|\b(kill|die|hate|sex|drugs?|gun|stupid|idiot|damn|hell)\b",
    re.IGNORECASE,
)
# Phrasings that assert what nobody measured.
UNMEASURED = re.compile(
    r"\b(cupboard|loves?|loved|you liked|likes|your taste|trending|fans?|everyone|guaranteed"
    r"|perfect|must-have|you need|you will)\b"
)
ENGLISH = re.compile(r"\b(the|you|your|it|this|in|of|a|with|and|for|to|is|at)\b", re.IGNORECASE)
TARGET_IN_CART = re.compile(r"\b(it|this)( one)?('s| is| was)( already)? in (your|the) cart\b")
PURCHASE_WORDS = re.compile(r"\byou (have )?(bought|ordered)\b|\border history\b")
TARGET_SLOTS = {
    name for name, kind in KIND_OF.items() if kind in ("repurchase", "price", "popularity")
}
# A state word, the fact kind it speaks of, and the states it may be said in.
STATE_WORDS: list[tuple[re.Pattern[str], str, set[str]]] = [
    (
        re.compile(r"\b(due|top-up|on schedule|running low|restock|time to (re)?order)\b"),
        "repurchase", {"due", "overdue"},
    ),
    (
        re.compile(r"\b(overdue|longer than your usual|past your usual)\b"),
        "repurchase", {"overdue"},
    ),
    (re.compile(r"\b(regular|usually (buy|re-?order)|cadence)\b"), "repurchase",
     {"early", "due", "overdue"}),
    (re.compile(r"\b(keep coming back|repeat buys?|favourites?|back for more)\b"), "repurchase",
     {"repeat", "early", "due", "overdue"}),
    (re.compile(r"\bagain\b"), "repurchase", {"one_off", "repeat", "early", "due", "overdue"}),
    (CHEAPER, "price", {"below"}),
    (PRICIER, "price", {"above"}),
    (CLOSER, "price", {"close"}),
    (re.compile(r"\b(best sellers?|most bought|most popular|top sellers?|popular)\b"),
     "popularity", {"top"}),
]  # fmt: skip


def shingles(text: str, n: int = 3) -> set[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Vocabulary:
    """What a reason could name in words that only a slot may: every country, theme and
    product title (as 3-word shingles) the shop knows."""

    countries: frozenset[str]
    themes: frozenset[str]
    title_shingles: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, countries: set[str], themes: set[str], titles: list[str]) -> "Vocabulary":
        shingled: set[str] = set()
        for title in titles:
            shingled |= shingles(clean(title))
        return cls(frozenset(countries), frozenset(themes), frozenset(shingled))


def sentences_of(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", text) is not None


def check(
    text: str, finished: bool, facts: list[Fact], binding: Binding, vocabulary: Vocabulary
) -> list[str]:
    """Problems with a reason written with slots, judged before and after filling; empty when
    it may be served. `facts` are those the reason was written from (prompt.told)."""
    problems: list[str] = []
    if not finished:
        problems.append("cut off: generation did not end by itself")
    stripped = text.strip()
    if not stripped:
        return [*problems, "empty"]
    if not 1 <= len(re.findall(r"[.!?](?=\s|$)", stripped)) <= 2 or stripped[-1] not in ".!?":
        problems.append("not one or two whole sentences")
    for slot, _ in slots_in(stripped):
        if slot not in binding.values:
            problems.append(f"{slot} is not in the evidence")
    plain = SLOT.sub(" ", stripped)
    if not ENGLISH.search(plain) or any(ord(c) > 127 for c in plain):
        problems.append("not plain English")
    problems += _values_in_words(plain.lower(), plain, vocabulary)
    introduced = {f"[ITEM{n}]": f for n, f in enumerate(_item_facts(facts), start=1)}
    for sentence in sentences_of(stripped):
        problems += _placement(sentence, facts, introduced)
        problems += _states(sentence.lower(), facts, introduced)
    problems += [f"unsupported claim of {c}" for c in unsupported_claims(stripped, facts)]
    problems += _filled(binding.fill(stripped))
    return problems


def _values_in_words(lowered: str, plain: str, vocabulary: Vocabulary) -> list[str]:
    """A value written out instead of through its slot: it is bound to no fact."""
    problems = []
    if re.search(r"\d", plain):
        problems.append("writes a number instead of its slot")
    if NUMBER_WORDS.search(lowered):
        problems.append(f"writes a count in words ({NUMBER_WORDS.search(lowered)[0]!r})")  # type: ignore[index]
    if any(unicodedata.category(c) == "Sc" for c in plain) or CURRENCY_CODE.search(plain):
        problems.append("writes a currency instead of [PRICE]")
    problems += [
        f"names {c} instead of [PLACE]" for c in vocabulary.countries if _mentions(lowered, c)
    ]
    problems += [
        f"names {t} instead of [THEME]" for t in vocabulary.themes if _mentions(lowered, t)
    ]
    problems += [f"names {m} instead of [MONTH]" for m in MONTHS if _mentions(lowered, m)]
    if shingles(lowered) & vocabulary.title_shingles:
        problems.append("names a product in words instead of its slot")
    if UNMEASURED.search(lowered):
        problems.append(f"claims what nobody measured ({UNMEASURED.search(lowered)[0]!r})")  # type: ignore[index]
    return problems


def _placement(sentence: str, facts: list[Fact], introduced: dict[str, Fact]) -> list[str]:
    """Each slot beside what it belongs to, in one clause (a sentence, or a part of one after a
    semicolon: "You bought [ITEM1] [COUNT1]; at [PRICE] it is below your usual [USUAL_PRICE].")."""
    return [
        problem
        for clause in re.split(r";\s+", sentence)
        for problem in _clause_placement(clause, facts, introduced)
    ]


def _clause_placement(clause: str, facts: list[Fact], introduced: dict[str, Fact]) -> list[str]:
    found = slots_in(clause)
    items = {slot for slot, name in found if name == "ITEM"}
    problems = []
    for slot, name in found:
        if name == "COUNT":
            own = slot.replace("COUNT", "ITEM")
            if own not in items or len(items) > 1:
                problems.append(f"{slot} is not beside its own item {own} alone: {clause}")
        elif name in TARGET_SLOTS and items:
            problems.append(
                f"{slot}, a value of the recommended item, beside {min(items)}: {clause}"
            )
        elif name in ("SHARE", "LIFT"):
            measured = next((f for f in facts if f.kind == "co_purchase"), None)
            with_it = {
                s for s, f in introduced.items()
                if measured and f.data["item_id"] == measured.data["item_id"]
            }  # fmt: skip
            if items != with_it:
                problems.append(f"{slot} is not beside the one item it was measured with: {clause}")
    return problems


def _states(lowered: str, facts: list[Fact], introduced: dict[str, Fact]) -> list[str]:
    """State words that contradict the state of the fact they speak of."""
    states = {f.kind: str(f.data.get("state")) for f in facts if "state" in f.data}
    problems = []
    for pattern, kind, allowed in STATE_WORDS:
        match = pattern.search(lowered)
        if match and states.get(kind) not in allowed:
            problems.append(
                f"{match[0]!r} does not fit the {kind} state {states.get(kind, 'absent')}"
            )
    if TARGET_IN_CART.search(lowered):  # a list never holds what is in the cart
        problems.append("puts the recommended item in the cart")
    for slot, fact in introduced.items():
        if slot.lower() not in lowered or fact.kind != "anchor":
            continue
        if PURCHASE_WORDS.search(lowered) and not fact.data["orders"]:
            problems.append(f"calls {slot}, a cart line, a purchase")
        if "cart" in lowered and not fact.data["in_cart"]:
            problems.append(f"puts {slot} in the cart, but it is not there")
        if re.search(r"looking at|this visit", lowered) and not fact.data["in_session"]:
            problems.append(f"puts {slot} in this visit, but it is not a session item")
    return problems


def _item_facts(facts: list[Fact]) -> list[Fact]:
    """The fact that introduces each history item, in slot order (as Binding numbers them)."""
    seen: dict[int, Fact] = {}
    for fact in facts:
        if "title" in fact.data:
            seen.setdefault(fact.data["item_id"], fact)
    return [
        next((f for f in facts if f.kind == "anchor" and f.data["item_id"] == i), first)
        for i, first in seen.items()
    ]


def _filled(filled: str) -> list[str]:
    problems = []
    if len(filled.split()) > MAX_WORDS:
        problems.append(f"{len(filled.split())} words, more than {MAX_WORDS}")
    if UNSAFE.search(filled):
        problems.append("unsafe or markup text")
    if any(unicodedata.category(c)[0] == "C" for c in filled) or SLOT.search(filled):
        problems.append("unprintable text or an unfilled slot")
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
            r"\b(restock|top-up|reorder|again|regular of yours|repeat buys?|favourites?"
            r"|back for more|running low|on schedule|\[orders\]|\[since_days\]|\[gap_days\]"
            r"|past pick|(ordered|bought) (this|it)\b|last ordered|since your last"
            r"|your last order|keep coming back)"
        ),
        {"repurchase"},
    ),
    "bought together": (
        re.compile(r"\b(together|alongside|partner|pairs|orders with|\[share\]|\[lift\])"),
        {"co_purchase"},
    ),
    "popularity": (
        re.compile(r"\b(popular|best seller|most bought|\[rank\]|ranked|shoppers \[place\])"),
        {"popularity"},
    ),
    "price": (re.compile(r"\[price\]|\[usual_price\]|\b(spend|price|pay|costs?)\b"), {"price"}),
    "theme": (re.compile(r"\b(range|theme|\[theme\])"), {"shared_theme"}),
    "your cart or visit": (re.compile(r"\bcart\b|looking at|this visit"), {"anchor"}),
}


def unsupported_claims(text: str, facts: list[Fact]) -> list[str]:
    """Each sentence's claims that no fact of the right kind supports."""
    kinds = {fact.kind for fact in facts}
    unsupported = []
    for sentence in sentences_of(text):
        lowered = sentence.lower()
        for claim, (pattern, supporters) in CLAIMS.items():
            if pattern.search(lowered) and not kinds & supporters:
                unsupported.append(f"{claim}: {sentence}")
    return unsupported
