"""The deterministic reason writer: the guide's phrasings, chosen by a stable hash of
(shopper, item). Always available; the fallback for every other writer."""

import hashlib

from app.reasons.guide import compose
from app.reasons.prompt import Slots
from app.schemas import Fact


def style_of(user: str, item_id: int) -> int:
    """A stable phrasing choice per (shopper, item), so a reason does not change on reload."""
    return int.from_bytes(hashlib.sha256(f"{user}:{item_id}".encode()).digest()[:4], "big")


def template_reason(facts: list[Fact], style: int) -> str:
    """Facts must come in priority order (evidence.gather sorts them)."""
    slots = Slots.of(facts)
    slot_of = {item_id: slots.slot(item_id) for item_id in slots.by_item}
    return slots.fill(compose(facts, slot_of, lead=style, follow=style >> 8))
