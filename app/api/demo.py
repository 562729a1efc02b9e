"""/demo: the storefront demo page (on when RECS_DEMO is set). Static files served by the app
itself (no CDN); the page reads the public API like any storefront would. Writing events needs an
API key, which a page must never hold, so "add to cart" goes through POST /demo/cart, which
records the event server-side: the part a storefront's own backend would play."""

import uuid
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app.deps import ServiceDep
from app.schemas import Event, EventBatch, EventsAccepted, ShopId, Strict

PAGE_DIR = Path(__file__).resolve().parent.parent / "demo"
# Only our own scripts and styles run on the page, whatever a product title holds.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)
assets = StaticFiles(directory=PAGE_DIR)


@router.get("/demo")
async def demo() -> HTMLResponse:
    return HTMLResponse(
        (PAGE_DIR / "index.html").read_text(),
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


class CartAdd(Strict):
    user_id: ShopId
    item_id: ShopId


@router.post("/demo/cart")
async def add_to_cart(service: ServiceDep, body: CartAdd) -> EventsAccepted:
    event = Event(
        event_id=f"demo-{uuid.uuid4().hex}", user_id=body.user_id, item_id=body.item_id,
        event="add_to_cart",
    )  # fmt: skip
    return await service.record(EventBatch(events=[event]))
