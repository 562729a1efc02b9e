"""/v1/events: shopper feedback in. Idempotent by event_id."""

from fastapi import APIRouter, Depends

from app.api.responses import ERRORS
from app.auth import require
from app.deps import ServiceDep
from app.errors import Problem
from app.schemas import EventBatch, EventsAccepted

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[Depends(require("events:write"))])


@router.post(
    "/events",
    summary="Record a batch of events",
    description="Views, clicks, add-to-cart and purchases, each with a client event_id: an"
    " event_id already stored for the same event is skipped, so retries are safe; one stored"
    " for a different event (another shopper, item, type, quantity, price, order or given"
    " time) is a 409. The batch is stored all or nothing, and the shopper's next"
    " recommendations reflect it.",
    responses={
        **ERRORS,
        409: {
            "model": Problem,
            "description": "An event_id already stored for a different event"
            " (`conflicting_event_ids`); nothing of the batch was stored.",
        },
    },
)
async def post_events(service: ServiceDep, batch: EventBatch) -> EventsAccepted:
    return await service.record(batch)
