"""/v1/explain: why an item is recommended to a shopper, with the evidence."""

from typing import Any

from fastapi import APIRouter, Depends

from app.api.responses import ERRORS, respond
from app.auth import READS
from app.deps import RequestIdDep, ServiceDep
from app.schemas import ExplainResponse, ShopId

router = APIRouter(prefix="/v1", tags=["explain"], dependencies=[Depends(READS)])


@router.get(
    "/explain",
    summary="The reason and evidence for one item and shopper",
    description="Evidence: the shopper's past items that drive the score (score drop when each"
    " is removed), co-purchase rate, shared theme, price against their usual spend,"
    " popularity in their country and their repurchase cadence.",
    response_model=ExplainResponse,
    responses=ERRORS,
)
async def explain(
    service: ServiceDep,
    request_id: RequestIdDep,
    user_id: ShopId,
    item_id: ShopId,
) -> Any:
    return respond(await service.explain(request_id, user_id, item_id))
