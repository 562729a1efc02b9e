"""Schemathesis hooks (tests/integration/test_schemathesis.py): the one rule of the API that its
JSON Schema cannot state, told to the generator, so that what it calls valid is valid."""

import json
import os
import re
import zlib
from typing import Any

import schemathesis

from app.ingest.cleaning import MAX_ID_CHARS, SHOP_ID_PATTERN

# Items the server under test knows (the shop's ids, a JSON list): an event for any other item
# is refused (422), by design.
KNOWN_ITEMS: list[str] = json.loads(os.environ.get("RR_KNOWN_ITEMS", "[]"))


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    """Events name items the server knows; a well-formed id is swapped for one of them (the
    same one each time: the choice follows the id's checksum)."""
    events = body.get("events") if isinstance(body, dict) else None
    if KNOWN_ITEMS and isinstance(events, list):
        for event in events:
            item = event.get("item_id") if isinstance(event, dict) else None
            if (
                isinstance(item, str)
                and len(item) <= MAX_ID_CHARS
                and re.fullmatch(SHOP_ID_PATTERN, item)
            ):
                event["item_id"] = KNOWN_ITEMS[zlib.crc32(item.encode()) % len(KNOWN_ITEMS)]
    return body
