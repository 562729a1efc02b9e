"""Capture the OpenAPI examples from a server running on the real data (make run): real
shoppers, items, reasons and errors, trimmed to a readable size. Writes app/api/examples.json,
which app/openapi.py puts into the schema that /docs shows. Only reads: no event is posted.

    .venv/bin/python -m bench.openapi_examples [BASE_URL] [SHOPPER]
"""

import json
import sys
from typing import Any
from urllib.parse import quote

import httpx

from app.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "app" / "api" / "examples.json"


def trimmed(body: Any) -> Any:
    """Lists cut to 2 entries: enough to show the shape."""
    if isinstance(body, dict):
        return {k: trimmed(v) for k, v in body.items()}
    if isinstance(body, list):
        return [trimmed(v) for v in body[:2]]
    return body


def main(base: str = "http://127.0.0.1:8000", shopper: str = "14911") -> None:
    client = httpx.Client(base_url=base, timeout=120)

    def get(path: str, **params: Any) -> Any:
        return client.get(path, params=params).json()

    recommended = get("/v1/recommend", user_id=shopper, k=3, with_reasons=True)
    item_id = recommended["items"][0]["item_id"]
    item_path = f"/v1/items/{quote(item_id, safe='')}"  # the shop's id, one path segment
    session = {"item_ids": [item_id], "k": 2, "exclude": [recommended["items"][1]["item_id"]]}
    examples = {
        "GET /v1/recommend": {"response": recommended},
        "POST /v1/recommend": {
            "request": session,
            "response": client.post("/v1/recommend", json=session).json(),
        },
        "GET /v1/explain": {"response": get("/v1/explain", user_id=shopper, item_id=item_id)},
        "GET /v1/items/{item_id}": {"response": get(item_path)},
        "GET /v1/items/{item_id}/similar": {"response": get(f"{item_path}/similar", k=2)},
        "GET /v1/shoppers/{user_id}/history": {
            "response": get(f"/v1/shoppers/{quote(shopper, safe='')}/history", limit=2)
        },
        "GET /v1/shoppers/sample": {"response": get("/v1/shoppers/sample", n=2)},
        "POST /v1/events": {
            "request": {
                "events": [
                    {
                        "event_id": f"web-{shopper}-0001",
                        "user_id": shopper,
                        "item_id": item_id,
                        "event": "add_to_cart",
                    },
                ]
            },
            "response": {"received": 1, "stored": 1, "duplicates": 0},
        },
        "problems": {
            "404": get("/v1/items/999999999"),
            "422": get("/v1/recommend", user_id=shopper, k=0),
        },
    }
    OUT.write_text(json.dumps(trimmed(examples), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:])
