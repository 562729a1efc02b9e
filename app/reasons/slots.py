"""Value slots: every name, number, price, place and period a reason states is a slot bound to
one fact, filled from that fact after the sentence is written, so a value cannot land on the
wrong item.

The slots of a set of facts (history items are numbered in order of first mention):

| slot | fact | filled with |
| --- | --- | --- |
| [ITEMn] | anchor, co_purchase, shared_theme | the history item's display name |
| [COUNTn] | anchor (bought) | its orders: "once", "in 3 orders" |
| [ORDERS] [SINCE_DAYS] [GAP_DAYS] | repurchase | "in 4 orders", "12 days", "30 days" |
| [SHARE] [LIFT] | co_purchase | "12%", "3.4 times" |
| [THEME] | shared_theme | the theme |
| [RANK] [PLACE] [MONTH] | popularity | "number 3", "in France" / "across the shop", "May 2011" |
| [PRICE] [USUAL_PRICE] | price | amounts in the shop's currency |

Writers (the template and the language model alike) write slots, never the values; the guard
checks the slotted sentence, then `fill` puts the values in and the guard checks the result.
"""

import re
from dataclasses import dataclass

from app.reasons.evidence import count_phrase, days_phrase
from app.schemas import Fact

SLOT = re.compile(r"\[([A-Z]+(?:_[A-Z]+)*?)(\d*)\]")
# Each slot name and the kind of fact it comes from.
KIND_OF = {
    "ITEM": "item", "COUNT": "anchor", "ORDERS": "repurchase", "SINCE_DAYS": "repurchase",
    "GAP_DAYS": "repurchase", "SHARE": "co_purchase", "LIFT": "co_purchase",
    "THEME": "shared_theme", "RANK": "popularity", "PLACE": "popularity", "MONTH": "popularity",
    "PRICE": "price", "USUAL_PRICE": "price",
}  # fmt: skip


@dataclass(frozen=True)
class Binding:
    """The slots of one set of facts: each slot's filled text, and the history items' numbers."""

    values: dict[str, str]  # "[ITEM1]" -> "Red retrospot lunch bag"
    item_number: dict[int, int]  # item id -> n of [ITEMn]

    @classmethod
    def of(cls, facts: list[Fact]) -> "Binding":
        values: dict[str, str] = {}
        numbers: dict[int, int] = {}
        for fact in facts:
            d = fact.data
            if "title" in d and d["item_id"] not in numbers:
                numbers[d["item_id"]] = n = len(numbers) + 1
                values[f"[ITEM{n}]"] = str(d["title"])
            if fact.kind == "anchor" and d["orders"]:
                values[f"[COUNT{numbers[d['item_id']]}]"] = count_phrase(int(d["orders"]))
            elif fact.kind == "repurchase":
                values["[ORDERS]"] = count_phrase(int(d["orders"]))
                values["[SINCE_DAYS]"] = days_phrase(int(d["days_since"]))
                if d["gap_days"] is not None:
                    values["[GAP_DAYS]"] = days_phrase(int(d["gap_days"]))
            elif fact.kind == "co_purchase":
                values["[SHARE]"] = f"{d['share']}%"
                values["[LIFT]"] = f"{d['lift']:.1f} times"
            elif fact.kind == "shared_theme":
                values["[THEME]"] = str(d["theme"])
            elif fact.kind == "popularity":
                values["[RANK]"] = f"number {d['rank']}"
                values["[PLACE]"] = f"in {d['country']}" if d["country"] else "across the shop"
                values["[MONTH]"] = str(d["month_name"])
            elif fact.kind == "price":
                values["[PRICE]"] = str(d["price_text"])
                values["[USUAL_PRICE]"] = str(d["usual_text"])
        return cls(values, numbers)

    def item(self, item_id: int) -> str:
        return f"[ITEM{self.item_number[item_id]}]"

    def fill(self, text: str) -> str:
        """Every known slot replaced by its value (unknown slots are left for the guard)."""
        filled = SLOT.sub(lambda m: self.values.get(m.group(0), m.group(0)), text)
        return filled[:1].upper() + filled[1:]


def slots_in(text: str) -> list[tuple[str, str]]:
    """The slots of a text as (slot, name): ("[COUNT1]", "COUNT")."""
    return [(m.group(0), m.group(1)) for m in SLOT.finditer(text)]
