"""/v1/events: shopper feedback in. Idempotent by event_id."""

from fastapi import APIRouter, Depends

from app.api.responses import ERRORS
from app.auth import require
from app.deps import ServiceDep
from app.schemas import EventBatch, EventsAccepted

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[Depends(require("events:write"))])


@router.post(
    "/events",
    summary="Record a batch of events",
    description="Views, clicks, add-to-cart and purchases, each with a client event_id: an"
    " event_id already stored is skipped, so retries are safe. The batch is stored all or"
    " nothing, and the shopper's next recommendations reflect it.",
    responses=ERRORS,
)
async def post_events(service: ServiceDep, batch: EventBatch) -> EventsAccepted:
    return await service.record(batch)
