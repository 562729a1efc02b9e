"""Schemathesis hooks (tests/integration/test_schemathesis.py): the one rule of the API that its
JSON Schema cannot state, told to the generator, so that what it calls valid is valid."""

import os
from typing import Any

import schemathesis

from app.schemas import MAX_ITEM_ID

# Items the server under test knows: an event for any other item is refused (422), by design.
KNOWN_ITEMS = [int(i) for i in os.environ.get("RR_KNOWN_ITEMS", "").split(",") if i]
ITEM_ID = range(1, MAX_ITEM_ID + 1)


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    """Events name items the server knows; a well-formed id is swapped for one of them."""
    events = body.get("events") if isinstance(body, dict) else None
    if KNOWN_ITEMS and isinstance(events, list):
        for event in events:
            item = event.get("item_id") if isinstance(event, dict) else None
            if isinstance(item, int) and not isinstance(item, bool) and item in ITEM_ID:
                event["item_id"] = KNOWN_ITEMS[item % len(KNOWN_ITEMS)]
    return body
