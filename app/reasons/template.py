"""The deterministic reason writer: the guide's phrasing for each fact's kind and state; a
stable hash of (shopper, item) only picks among phrasings that say the same thing. Always
available; the fallback for every other writer."""

import hashlib

from app.reasons.guide import compose, told
from app.reasons.slots import Binding
from app.schemas import Fact


def style_of(user: str, item_id: int) -> int:
    """A stable phrasing choice per (shopper, item), so a reason does not change on reload."""
    return int.from_bytes(hashlib.sha256(f"{user}:{item_id}".encode()).digest()[:4], "big")


def template_reason(facts: list[Fact], style: int) -> str:
    """Facts must come in priority order (evidence.gather sorts them)."""
    facts = told(facts)
    binding = Binding.of(facts)
    return binding.fill(compose(facts, binding, lead=style, follow=style >> 8))
