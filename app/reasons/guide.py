"""The reason-writing guide: human-written phrasings per kind and state of fact, written with
value slots (app/reasons/slots.py) and never with values.

Two users: the template writer picks from it (by the fact's kind and state; a stable hash only
picks among phrasings that say the same thing) and writes one sentence per fact (`compose`);
`train-reasons` renders it into the targets the language model is fine-tuned on, which join two
facts into one sentence (`blend`), so the model combines what the template lists.

Rules every phrasing follows:
- say only what its fact says, in the words its state allows; the recommended item is "this"
  or "it"; no numbers, names, places or periods except through slots;
- a repurchase is "due" or "running low" only when due, "overdue" only when overdue, "usually"
  or "every" only with a steady cadence, "keep coming back" only with two or more orders;
- a price is "below", "above" or "close to" the shopper's usual price, as its state says;
- "best seller" and "most bought" only for a top rank;
- lead phrasings are one sentence (no questions); a follow phrasing adds a short second one;
  a tail (`TAILS`) states the second fact as a clause of the lead's sentence instead.
"""

from app.reasons.slots import Binding
from app.schemas import Fact

# {item} is the fact's history item ([ITEMn]), {count} its order count ([COUNTn]).
LEADS: dict[str, list[str]] = {
    "anchor_bought": [
        "Because you bought {item} {count}.",
        "Picked for you after the {item} you bought {count}.",
        "You bought {item} {count}, so we think this suits you.",
        "Chosen to go with the {item} you bought {count}.",
        "Since you bought {item} {count}, this one should appeal.",
        "A good match for the {item} you bought {count}.",
        "Inspired by the {item} you bought {count}.",
        "Your {item}, bought {count}, points to this one.",
    ],
    "anchor_cart": [
        "Chosen to go with the {item} in your cart.",
        "A good match for the {item} in your cart.",
        "Picked for you because {item} is in your cart.",
        "With {item} in your cart, this one should appeal.",
    ],
    "anchor_session": [
        "Chosen to go with the {item} you are looking at.",
        "A good match for the {item} in this visit.",
        "Picked for you because you are looking at {item}.",
        "With {item} in this visit, this one should appeal.",
    ],
    "co_purchase": [
        "Shoppers who buy {item} pick this up [LIFT] as often as average.",
        "[SHARE] of orders with {item} include this too.",
        "Often bought together with {item}: [SHARE] of its orders hold this as well.",
        "It goes with {item}: they are bought together [LIFT] as often as chance would suggest.",
        "Found in [SHARE] of the orders that hold {item}.",
        "It is bought alongside {item} [LIFT] as often as chance would suggest.",
        "Orders with {item} hold this in [SHARE] of cases.",
        "Pairs well with {item}: [SHARE] of orders with it include this.",
    ],
    "shared_theme": [
        "More [THEME], like {item}.",
        "From the same [THEME] range as {item}.",
        "Another pick from [THEME], where {item} comes from.",
        "It sits in [THEME], like {item}.",
        "Keeping with [THEME], like {item}.",
        "Like {item}, this one is from [THEME].",
    ],
    "repurchase_one_off": [
        "You have ordered this [ORDERS] before, [SINCE_DAYS] ago.",
        "You bought this [ORDERS], [SINCE_DAYS] ago.",
        "A past pick of yours, ordered [SINCE_DAYS] ago.",
        "You last ordered this [SINCE_DAYS] ago.",
    ],
    "repurchase_repeat": [
        "You have ordered this [ORDERS]; your last was [SINCE_DAYS] ago.",
        "Bought [ORDERS] so far, the latest [SINCE_DAYS] ago.",
        "One of your repeat buys: you have ordered it [ORDERS].",
        "You keep coming back to this one: bought [ORDERS] to date.",
    ],
    "repurchase_early": [
        "You reorder this about every [GAP_DAYS]; your last order was [SINCE_DAYS] ago.",
        "You usually buy this every [GAP_DAYS] or so, last [SINCE_DAYS] ago.",
        "A regular of yours, bought about every [GAP_DAYS]; the last was [SINCE_DAYS] ago.",
        "Ready for next time: you reorder this about every [GAP_DAYS], and it has been"
        " [SINCE_DAYS].",
    ],
    "repurchase_due": [
        "Due a top-up: you buy this about every [GAP_DAYS], and it has been [SINCE_DAYS].",
        "Right on schedule: you reorder this about every [GAP_DAYS], last [SINCE_DAYS] ago.",
        "Time to restock: you usually reorder every [GAP_DAYS], and it has been [SINCE_DAYS].",
        "Running low, perhaps: you reorder about every [GAP_DAYS], and it has been [SINCE_DAYS].",
    ],
    "repurchase_overdue": [
        "Overdue for a top-up: you usually reorder every [GAP_DAYS], and it has been [SINCE_DAYS].",
        "It has been [SINCE_DAYS] since your last order, longer than your usual [GAP_DAYS].",
        "Past your usual [GAP_DAYS] between orders: the last was [SINCE_DAYS] ago.",
        "You usually reorder this every [GAP_DAYS], and it has been [SINCE_DAYS] since the last.",
    ],
    "popularity_top": [
        "One of the most bought items [PLACE]: [RANK] in [MONTH].",
        "A best seller [PLACE], [RANK] in [MONTH].",
        "Shoppers [PLACE] made it [RANK] in [MONTH].",
        "It was [RANK] with shoppers [PLACE] in [MONTH].",
    ],
    "popularity_ranked": [
        "Shoppers [PLACE] made it [RANK] in [MONTH].",
        "It was [RANK] with shoppers [PLACE] in [MONTH].",
        "Ranked [RANK] with shoppers [PLACE] in [MONTH].",
        "In [MONTH] it was [RANK] with shoppers [PLACE].",
    ],
    "price_below": [
        "At [PRICE], it is below the [USUAL_PRICE] you usually pay for an item.",
        "It typically sells for [PRICE], less than your usual [USUAL_PRICE] an item.",
        "Easy on the budget: [PRICE], below your usual [USUAL_PRICE].",
        "Usually [PRICE], it costs less than the [USUAL_PRICE] you typically pay.",
    ],
    "price_close": [
        "At [PRICE], it is close to the [USUAL_PRICE] you usually pay for an item.",
        "Priced at [PRICE], right in line with your usual [USUAL_PRICE].",
        "It typically sells for [PRICE], about what you usually pay ([USUAL_PRICE]).",
        "[PRICE], close to your usual [USUAL_PRICE] an item.",
    ],
    "price_above": [
        "At [PRICE], it is above the [USUAL_PRICE] you usually pay for an item.",
        "A step up at [PRICE], above your usual [USUAL_PRICE] an item.",
        "It typically sells for [PRICE], more than your usual [USUAL_PRICE].",
        "Worth a splurge: [PRICE], above your usual [USUAL_PRICE].",
    ],
}
FOLLOWS: dict[str, list[str]] = {
    "anchor_bought": [
        "You bought {item} {count}.",
        "It goes with the {item} you bought.",
        "You have {item} already.",
    ],
    "anchor_cart": [
        "It goes with the {item} in your cart.",
        "You have {item} in your cart.",
    ],
    "anchor_session": [
        "It goes with the {item} you are looking at.",
        "You are looking at {item}.",
    ],
    "shared_theme": [
        "It is in [THEME], like {item}.",
        "Same [THEME] range as {item}.",
        "More [THEME], like {item}.",
    ],
    "popularity_top": [
        "It was [RANK] [PLACE] in [MONTH].",
        "A best seller [PLACE] in [MONTH].",
        "Shoppers [PLACE] made it [RANK] in [MONTH].",
    ],
    "popularity_ranked": [
        "It was [RANK] [PLACE] in [MONTH].",
        "Shoppers [PLACE] made it [RANK] in [MONTH].",
    ],
    "price_below": [
        "At [PRICE], it is below your usual [USUAL_PRICE].",
        "And at [PRICE], it costs less than you usually pay.",
    ],
    "price_above": [
        "At [PRICE], it is above your usual [USUAL_PRICE].",
        "It costs [PRICE], a step up for you.",
    ],
    "price_close": [
        "At [PRICE], it is close to your usual [USUAL_PRICE].",
        "[PRICE], about your usual price.",
    ],
}
# Clauses that state a second fact inside the lead's sentence (`blend`): the language model's
# targets combine two facts in one sentence; the template writes them as two.
TAILS: dict[str, list[str]] = {
    "anchor_bought": [
        "it goes with the {item} you bought {count}",
        "it suits the {item} you bought {count}",
    ],
    "anchor_cart": [
        "it goes with the {item} in your cart",
        "it suits the {item} in your cart",
    ],
    "anchor_session": [
        "it goes with the {item} you are looking at",
        "it suits the {item} you are looking at",
    ],
    "shared_theme": [
        "it is [THEME], like {item}",
        "like {item}, it comes from [THEME]",
        "it is more [THEME], like {item}",
    ],
    "popularity_top": [
        "it was a best seller [PLACE] in [MONTH], at [RANK]",
        "shoppers [PLACE] made it [RANK] in [MONTH]",
        "it was [RANK] with shoppers [PLACE] in [MONTH]",
    ],
    "popularity_ranked": [
        "shoppers [PLACE] made it [RANK] in [MONTH]",
        "it was [RANK] with shoppers [PLACE] in [MONTH]",
        "it ranked [RANK] with shoppers [PLACE] in [MONTH]",
    ],
    "price_below": [
        "at [PRICE] it is below your usual [USUAL_PRICE]",
        "it costs [PRICE], less than your usual [USUAL_PRICE]",
        "it sells for [PRICE], below the [USUAL_PRICE] you usually pay",
    ],
    "price_close": [
        "at [PRICE] it is close to your usual [USUAL_PRICE]",
        "it costs [PRICE], in line with your usual [USUAL_PRICE]",
        "it sells for [PRICE], close to the [USUAL_PRICE] you usually pay",
    ],
    "price_above": [
        "at [PRICE] it is a step up from your usual [USUAL_PRICE]",
        "it costs [PRICE], more than your usual [USUAL_PRICE]",
        "it sells for [PRICE], above the [USUAL_PRICE] you usually pay",
    ],
}
DEFAULT = "Recommended for you."  # no facts: claim nothing


def bank(fact: Fact) -> str:
    """The phrasing bank a fact's sentence comes from: its kind and state."""
    d = fact.data
    if fact.kind == "anchor":
        return (
            "anchor_bought" if d["orders"] else "anchor_cart" if d["in_cart"] else "anchor_session"
        )
    if fact.kind in ("repurchase", "popularity", "price"):
        return f"{fact.kind}_{d['state']}"
    return fact.kind


def placeholders(fact: Fact, binding: Binding) -> dict[str, str]:
    """The guide's {item} and {count} for one fact: its history item's slots."""
    if "title" not in fact.data:
        return {"item": "", "count": ""}
    n = binding.item_number[fact.data["item_id"]]
    return {"item": f"[ITEM{n}]", "count": f"[COUNT{n}]"}


def follow_for(facts: list[Fact]) -> Fact | None:
    """The fact a second sentence may come from: another kind than the lead's. After
    "co_purchase" (which names the anchor) or "repurchase", an anchor reads as a non sequitur."""
    if not facts:
        return None
    used = {facts[0].kind}
    if facts[0].kind in ("co_purchase", "repurchase"):
        used.add("anchor")
    for fact in facts[1:]:
        if fact.kind not in used and bank(fact) in FOLLOWS:
            return fact
    return None


def told(facts: list[Fact]) -> list[Fact]:
    """The facts a reason is written from: the lead (the strongest fact) and the fact for a
    second sentence, when there is one. The prompt holds only these: it is read 2-3x faster
    than all the evidence, and leaves the model nothing else to mix in."""
    second = follow_for(facts)
    return facts[:1] + ([second] if second is not None else [])


def compose(facts: list[Fact], binding: Binding, lead: int, follow: int | None) -> str:
    """One reason with slots: the lead fact in phrasing `lead`, plus a second sentence in
    phrasing `follow` from `follow_for(facts)` when `follow` is not None. Facts come in
    priority order."""
    if not facts:
        return DEFAULT
    first = facts[0]
    leads = LEADS[bank(first)]
    sentence = leads[lead % len(leads)].format(**placeholders(first, binding))
    second = follow_for(facts)
    if follow is None or second is None:
        return sentence
    follows = FOLLOWS[bank(second)]
    return f"{sentence} {follows[follow % len(follows)].format(**placeholders(second, binding))}"


def blend(facts: list[Fact], binding: Binding, lead: int, tail: int) -> str | None:
    """One sentence with both facts of `told(facts)`: the lead fact in phrasing `lead`, the
    second as clause `tail`; None when there is no second fact. The clause follows a semicolon
    when either part names a history item, so each item's values stay in a clause of their own
    (the guard places slots per clause), or when the lead already runs on with "and"."""
    second = follow_for(facts)
    if not facts or second is None:
        return None
    leads = LEADS[bank(facts[0])]
    sentence = leads[lead % len(leads)].format(**placeholders(facts[0], binding))
    tails = TAILS[bank(second)]
    clause = tails[tail % len(tails)].format(**placeholders(second, binding))
    separate = "[ITEM" in sentence + clause or " and " in sentence or ":" in sentence
    return f"{sentence[:-1]}{'; ' if separate else ', and '}{clause}."
