"""Evidence -> prompt: a compact, deterministic rendering of the facts for a language model.

The model sees slots and states, never values: each fact is a line of slots ([ITEM1], [COUNT1],
[PRICE]...) with the state its words must follow, and it writes slots back. Names, numbers,
places and periods are filled in from their facts afterwards (app/reasons/slots.py), so text
inside a title ("ignore previous instructions...") never reaches the model, and no value can be
mangled or moved onto another item.
"""

from app.reasons.guide import placeholders, told
from app.reasons.slots import Binding
from app.schemas import Fact

SYSTEM = (
    "Write one short, friendly reason why a shop recommends this item, from the facts only."
    " Write every name and number as its slot ([ITEM1], [PRICE]), at most two sentences,"
    " and only words that fit each fact's state."
)

STATES = {
    "one_off": "bought once",
    "repeat": "bought again, no steady cadence",
    "early": "steady cadence, not due yet",
    "due": "steady cadence, due now",
    "overdue": "steady cadence, overdue",
    "top": "a top seller",
    "ranked": "ranked, not a top seller",
    "below": "below the usual price",
    "close": "close to the usual price",
    "above": "above the usual price",
}


def _line(fact: Fact, binding: Binding) -> str:
    d, slots = fact.data, placeholders(fact, binding)
    item, count = slots["item"], slots["count"]
    if fact.kind == "anchor":
        if d["orders"]:
            return f"you bought {item} {count}"
        return f"{item} is in your cart" if d["in_cart"] else f"you are looking at {item}"
    if fact.kind == "co_purchase":
        return f"[SHARE] of orders with {item} also hold this, [LIFT] the usual rate"
    if fact.kind == "shared_theme":
        return f"this is [THEME], like {item}"
    if fact.kind == "repurchase":
        every = ", about every [GAP_DAYS]" if d["gap_days"] is not None else ""
        return f"you bought this [ORDERS]{every}; last [SINCE_DAYS] ago ({STATES[d['state']]})"
    if fact.kind == "popularity":
        return f"[RANK] with shoppers [PLACE] in [MONTH] ({STATES[d['state']]})"
    return f"it sells for [PRICE]; you usually pay [USUAL_PRICE] ({STATES[d['state']]})"


def render(facts: list[Fact], style: int) -> tuple[str, Binding]:
    """The user turn of the prompt and the slots its facts bind. `style` (0-3) asks for one of
    a few openings, so greedy decoding does not collapse onto one phrasing."""
    facts = told(facts)
    binding = Binding.of(facts)
    lines = [f"- {_line(fact, binding)}" for fact in facts] or ["- popular right now"]
    return "\n".join(["Facts:", *lines, f"Style: {style % 4}"]), binding
