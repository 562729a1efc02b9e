"""The deterministic reason writer: one or two facts, in one of several phrasings chosen by a
stable hash of (shopper, item). Always available; the fallback for every other writer."""

import hashlib
from collections.abc import Callable
from typing import Any

from app.schemas import Fact

Phrasing = Callable[[dict[str, Any]], str]


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


LEADS: dict[str, list[Phrasing]] = {
    "repurchase": [
        lambda d: (
            f"You reorder this about every {d['every_days']} days, and your last order"
            f" was {d['days_since']} days ago."
            if d["every_days"]
            else f"You have ordered this before, {d['days_since']} days ago."
        ),
        lambda d: f"Time to restock? You have bought it in {d['orders']} orders.",
    ],
    "co_purchase": [
        lambda d: (
            f"Shoppers who buy {d['title']} pick this up {d['lift']:.1f}x more often than average."
        ),
        lambda d: f"{round(100 * d['confidence'])}% of orders with {d['title']} include this too.",
    ],
    "anchor": [
        lambda d: f"Because you bought {d['title']} {_times(d['times_bought'])}.",
        lambda d: f"Picked for you after your {d['title']}.",
    ],
    "shared_theme": [lambda d: f"More {d['theme']}, like your {d['title']}."],
    "popularity": [
        lambda d: f"A favourite in {d['country']}: number {d['rank']} there in {d['month']}.",
        lambda d: f"One of the most bought items in {d['country']} (number {d['rank']}).",
    ],
    "price": [lambda d: f"At £{d['price']:.2f}, it is {d['position']} what you usually spend."],
}
FOLLOWS: dict[str, Phrasing] = {  # a second, shorter sentence from another fact
    "anchor": lambda d: f"You bought {d['title']} {_times(d['times_bought'])}.",
    "shared_theme": lambda d: f"It is in {d['theme']}, like your {d['title']}.",
    "popularity": lambda d: f"It is number {d['rank']} in {d['country']} in {d['month']}.",
    "price": lambda d: f"At £{d['price']:.2f}, it is {d['position']} your usual spend.",
}
DEFAULT = "Popular with shoppers right now."


def style_of(user: str, item_id: int) -> int:
    """A stable phrasing choice per (shopper, item), so a reason does not change on reload."""
    return int.from_bytes(hashlib.sha256(f"{user}:{item_id}".encode()).digest()[:4], "big")


class TemplateWriter:
    name = "template"

    def write(self, facts: list[Fact], style: int) -> str:
        """Facts must come in priority order (evidence.gather sorts them)."""
        if not facts:
            return DEFAULT
        lead = facts[0]
        phrasings = LEADS[lead.kind]
        sentence = phrasings[style % len(phrasings)](lead.data)
        used = {lead.kind}
        # "co_purchase" already names the anchor item, and after "repurchase" an unrelated
        # anchor reads as a non sequitur: follow with another kind of fact.
        if lead.kind in ("co_purchase", "repurchase"):
            used.add("anchor")
        for fact in facts[1:]:
            if fact.kind not in used and fact.kind in FOLLOWS:
                return f"{sentence} {FOLLOWS[fact.kind](fact.data)}"
        return sentence
