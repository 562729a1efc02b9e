"""Evidence -> prompt: a compact, deterministic rendering of the facts for a language model.

Product names reach the model only as data: each history item is a slot ([ITEM1], [ITEM2]) with
its sanitised display name in quotes, the model writes the slots, and `fill` puts the exact
names back afterwards. So names are never mangled, and text inside a title ("ignore previous
instructions...") is never copied into a reason: the guard rejects any output that repeats a
title's words instead of its slot.
"""

import re
from dataclasses import dataclass

from app.reasons.guide import follow_for, times
from app.schemas import Fact

SYSTEM = (
    "Write one short, friendly reason why a shop recommends this item, from the facts only."
    " Name the shopper's items by slot ([ITEM1]), numbers as digits, at most two sentences."
)
ACRONYMS = {"uk", "usa", "led", "diy", "abc", "ii", "iii"}
MAX_NAME_CHARS = 60
ONE_DAYS = re.compile(r"(?<![\d.,])1 days\b")
SLOT = re.compile(r"\[ITEM(\d+)\]")


def display_name(title: str) -> str:
    """A catalogue title as a shopper reads it: sentence case, printable, bounded.

    UCI titles are upper case ("WHITE HANGING HEART T-LIGHT HOLDER"); anything but letters,
    digits and plain punctuation is dropped, so a title cannot smuggle markup or slot syntax.
    """
    cleaned = re.sub(r"[^\w\s'&,./%+-]", " ", title, flags=re.UNICODE)
    words = [w for w in cleaned.replace("_", " ").split() if w]
    text = " ".join(w.upper() if w.lower() in ACRONYMS else w.lower() for w in words)
    text = text[:MAX_NAME_CHARS].rstrip(" ,.-")
    return text[:1].upper() + text[1:] if text else "an item"


@dataclass(frozen=True)
class Slots:
    """History items the facts mention, numbered in order of first mention."""

    names: dict[int, str]  # slot number -> display name
    by_item: dict[int, int]  # item id -> slot number

    @classmethod
    def of(cls, facts: list[Fact]) -> "Slots":
        names: dict[int, str] = {}
        by_item: dict[int, int] = {}
        for fact in facts:
            item_id, title = fact.data.get("item_id"), fact.data.get("title")
            if title is None or item_id is None or item_id in by_item:
                continue
            number = len(names) + 1
            by_item[item_id] = number
            names[number] = display_name(str(title))
        return cls(names, by_item)

    def slot(self, item_id: int) -> str:
        return f"[ITEM{self.by_item[item_id]}]"

    def fill(self, text: str) -> str:
        """Replace each known slot by its display name (unknown slots are left for the guard).
        Every served reason passes here, so "1 days" (the guide's "{days} days", which the LM
        learned too) becomes "1 day" here."""
        filled = SLOT.sub(lambda m: self.names.get(int(m.group(1)), m.group(0)), text)
        return ONE_DAYS.sub("1 day", filled)


def _facts_lines(facts: list[Fact], slots: Slots) -> list[str]:
    lines = []
    for fact in facts:
        d = fact.data
        if fact.kind == "anchor":
            lines.append(f"you bought {slots.slot(d['item_id'])} {times(d['times_bought'])}")
        elif fact.kind == "co_purchase":
            lines.append(
                f"{round(100 * d['confidence'])}% of orders with {slots.slot(d['item_id'])}"
                f" also hold this ({d['lift']:.1f}x the usual rate)"
            )
        elif fact.kind == "shared_theme":
            lines.append(f"this is {d['theme']}, like {slots.slot(d['item_id'])}")
        elif fact.kind == "repurchase":
            every = f", about every {d['every_days']} days" if d.get("every_days") else ""
            orders = "once" if d["orders"] == 1 else f"in {d['orders']} orders"
            lines.append(f"you bought this {orders}{every}; last {d['days_since']} days ago")
        elif fact.kind == "popularity":
            lines.append(f"number {d['rank']} with shoppers in {d['country']} in {d['month']}")
        elif fact.kind == "price":
            lines.append(
                f"price £{d['price']:.2f}, {d['position']} your usual £{d['usual']:.2f} an item"
            )
    return lines


def told(facts: list[Fact]) -> list[Fact]:
    """The facts a reason is written from, as the guide composes one: the lead (the strongest
    fact) and the fact for a second sentence, when there is one. The prompt holds only these:
    it is read 2-3x faster than all the evidence, and leaves the model nothing else to mix in."""
    second = follow_for(facts)
    return facts[:1] + ([second] if second is not None else [])


def render(facts: list[Fact], style: int) -> tuple[str, Slots]:
    """The user turn of the prompt and its slots. `style` (0-3) asks for one of a few
    openings, so greedy decoding does not collapse onto one phrasing."""
    facts = told(facts)
    slots = Slots.of(facts)
    names = [f'[ITEM{n}] = "{name}"' for n, name in slots.names.items()]
    facts_block = [f"- {line}" for line in _facts_lines(facts, slots)] or ["- popular right now"]
    return "\n".join(
        ["Items:", *(names or ["(none)"]), "Facts:", *facts_block, f"Style: {style % 4}"]
    ), slots
