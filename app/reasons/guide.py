"""The reason-writing guide: human-written phrasings per kind of fact, with slots for the
shopper's items ([ITEM1]) and digits for every number.

Two users: the template writer picks from it deterministically, and `train-reasons` renders it
into the targets the language model is fine-tuned on. Rules every phrasing follows:
- say only what its fact says; the recommended item is "this" or "it";
- numbers as digits (a count of one is "once"), prices with £ and two decimals;
- a price is "below", "above" or "close to" the shopper's usual spend, never another direction;
- lead phrasings are one sentence (no questions: a reason is one or two sentences in all);
  a follow phrasing adds a short second one.
"""

from typing import Any

from app.schemas import Fact

# Placeholders: {item} the fact's history item (a slot), {times} "once" / "3 times",
# {share} {lift} {theme} {orders} {every} {days} {rank} {country} {month} {price} {usual}.
LEADS: dict[str, list[str]] = {
    "anchor": [
        "Because you bought {item} {times}.",
        "Picked for you after your {item}.",
        "You bought {item} {times}, so we think this suits you.",
        "Chosen to go with the {item} you bought {times}.",
        "Since {item} is in your order history, this one should appeal.",
        "A good match for your {item}.",
        "Shoppers with {item} in their cupboard tend to like this too.",
        "Inspired by the {item} you have bought {times}.",
    ],
    "co_purchase": [
        "Shoppers who buy {item} pick this up {lift}x more often than average.",
        "{share}% of orders with {item} include this too.",
        "Often bought together with your {item}: {share}% of its orders hold this as well.",
        "It goes with {item}: people buy the two together {lift}x more than usual.",
        "A natural partner for {item}, found in {share}% of the orders that hold it.",
        "Bought alongside {item} {lift}x more often than chance would suggest.",
        "Customers who order {item} add this in {share}% of cases.",
        "Pairs well with {item}; {share}% of orders with it include this.",
    ],
    "shared_theme": [
        "More {theme}, like your {item}.",
        "From the same {theme} range as your {item}.",
        "Another pick from {theme}, where your {item} comes from.",
        "If you liked {item}, here is more from {theme}.",
        "It sits in {theme}, like your {item}.",
        "Keeping with {theme}, like the {item} you bought.",
    ],
    "repurchase": [
        "Time to restock: you have bought it in {orders} orders.",
        "You have ordered this in {orders} orders; your last was {days} days ago.",
        "A regular of yours: {orders} orders so far, the latest {days} days ago.",
        "Back for more: it has been {days} days since you last ordered it.",
        "You keep coming back to this one: {orders} orders to date.",
        "One of your favourites, bought in {orders} orders.",
    ],
    "repurchase_once": [
        "You have ordered this before, {days} days ago.",
        "You bought this once already, {days} days ago.",
        "Back for more: you last ordered this {days} days ago.",
        "A past pick of yours, ordered {days} days ago.",
    ],
    "repurchase_cadence": [
        "You reorder this about every {every} days, and your last order was {days} days ago.",
        "Due a top-up: you buy this roughly every {every} days, and it has been {days}.",
        "You usually reorder every {every} days, and it has been {days} days.",
        "Right on schedule: you buy it about every {every} days, last {days} days ago.",
        "Running low, perhaps: your usual gap is {every} days and it has been {days}.",
        "Bought in {orders} orders, about every {every} days.",
    ],
    "popularity": [
        "A favourite in {country}: number {rank} there in {month}.",
        "One of the most bought items in {country} (number {rank}).",
        "Shoppers in {country} made it number {rank} in {month}.",
        "Popular near you: number {rank} in {country} in {month}.",
        "A best seller in {country}, ranked {rank} in {month}.",
        "Ranked number {rank} with shoppers in {country} in {month}.",
    ],
    "price_below": [
        "At £{price}, it is below what you usually spend.",
        "A small treat at £{price}, less than your usual £{usual} an item.",
        "At £{price}, it costs less than your usual £{usual}.",
        "Easy on the budget: £{price}, below your usual spend.",
    ],
    "price_above": [
        "At £{price}, it is above what you usually spend.",
        "A step up at £{price}, above your usual £{usual} an item.",
        "At £{price}, a little more than your usual £{usual}.",
        "Worth a splurge: £{price}, above your usual spend.",
    ],
    "price_close": [
        "At £{price}, it is close to what you usually spend.",
        "Priced at £{price}, right in line with your usual £{usual}.",
        "At £{price}, about what you usually pay for an item.",
        "£{price}, close to your usual £{usual} an item.",
    ],
}
FOLLOWS: dict[str, list[str]] = {
    "anchor": [
        "You bought {item} {times}.",
        "It suits your {item}.",
        "You have {item} already.",
    ],
    "shared_theme": [
        "It is in {theme}, like your {item}.",
        "Same {theme} range as your {item}.",
        "More {theme} for your collection.",
    ],
    "popularity": [
        "It is number {rank} in {country} in {month}.",
        "Shoppers in {country} love it too.",
        "A top {rank} pick in {country}.",
    ],
    "price_below": [
        "At £{price}, it is below your usual spend.",
        "And at £{price}, it is a bargain for you.",
    ],
    "price_above": [
        "At £{price}, it is above your usual spend.",
        "It costs £{price}, a step up for you.",
    ],
    "price_close": [
        "At £{price}, it is close to your usual spend.",
        "£{price}, about your usual price.",
    ],
}
DEFAULT = "Recommended for you."  # no facts: claim nothing


def times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def count(n: int, noun: str) -> str:
    """ "1 day", "3 days": a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def bank(fact: Fact) -> str:
    """The phrasing bank a fact's sentence comes from."""
    if fact.kind == "price":
        return {"below": "price_below", "above": "price_above"}.get(
            fact.data["position"], "price_close"
        )
    if fact.kind == "repurchase" and fact.data.get("orders") == 1:
        return "repurchase_once"  # one earlier order: nothing "regular" or "favourite" about it
    if fact.kind == "repurchase" and fact.data.get("every_days"):
        return "repurchase_cadence"
    return fact.kind


def values(fact: Fact, slot_of: dict[int, str]) -> dict[str, Any]:
    """The placeholders of one fact, as the guide writes them."""
    d = fact.data
    item = slot_of.get(d["item_id"], "it") if "title" in d else "it"
    return {
        "item": item,
        "times": times(int(d.get("times_bought", 1))),
        "share": round(100 * d.get("confidence", 0)),
        "lift": f"{d.get('lift', 0):.1f}",
        "theme": d.get("theme", ""),
        "orders": d.get("orders", ""),
        "every": d.get("every_days", ""),
        "days": d.get("days_since", ""),
        "rank": d.get("rank", ""),
        "country": d.get("country", ""),
        "month": d.get("month", ""),
        "price": f"{d.get('price', 0):.2f}",
        "usual": f"{d.get('usual', 0):.2f}",
    }


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


def compose(facts: list[Fact], slot_of: dict[int, str], lead: int, follow: int | None) -> str:
    """One reason: the lead fact in phrasing `lead`, plus a second sentence in phrasing
    `follow` from `follow_for(facts)` when `follow` is not None. Facts come in priority order."""
    if not facts:
        return DEFAULT
    first = facts[0]
    leads = LEADS[bank(first)]
    sentence = leads[lead % len(leads)].format(**values(first, slot_of))
    second = follow_for(facts)
    if follow is None or second is None:
        return sentence
    follows = FOLLOWS[bank(second)]
    return f"{sentence} {follows[follow % len(follows)].format(**values(second, slot_of))}"
