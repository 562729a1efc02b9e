"""/v1/shoppers: what a shopper bought and has in the cart, and a sample of shoppers."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.api.responses import ERRORS
from app.auth import READS
from app.deps import ServiceDep
from app.schemas import ShopId, ShopperHistory, ShopperSample

router = APIRouter(prefix="/v1/shoppers", tags=["shoppers"], dependencies=[Depends(READS)])


@router.get(
    "/sample",
    summary="A random sample of real shoppers",
    description="Shoppers with at least 3 orders, in random order (the demo's picker).",
    responses=ERRORS,
)
async def sample(service: ServiceDep, n: Annotated[int, Query(ge=1, le=50)] = 12) -> ShopperSample:
    return await service.sample_shoppers(n)


@router.get(
    "/{user_id:path}/history",
    summary="A shopper's recent purchases and cart",
    description="Distinct items, most recently bought first, with how many orders held each;"
    " and the cart (items added since the last purchase). 404 for an unknown shopper.",
    responses=ERRORS,
)
async def history(
    service: ServiceDep,
    user_id: Annotated[ShopId, Path()],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> ShopperHistory:
    return await service.history(user_id, limit)
