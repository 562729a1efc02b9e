"""/v1/items: one item, and the items most like it."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.api.responses import ERRORS
from app.auth import READS
from app.deps import ServiceDep
from app.schemas import MAX_ITEM_ID, MAX_K, Item, SimilarResponse

router = APIRouter(prefix="/v1/items", tags=["items"], dependencies=[Depends(READS)])
ItemIdPath = Annotated[int, Path(ge=1, le=MAX_ITEM_ID, description="The item's id.")]


@router.get("/{item_id}", summary="One item", responses=ERRORS)
async def get_item(service: ServiceDep, item_id: ItemIdPath) -> Item:
    return service.item(item_id)


@router.get(
    "/{item_id}/similar",
    summary="Items like this one",
    description="Nearest item vectors, blended with how often the two are bought together.",
    responses=ERRORS,
)
async def similar_items(
    service: ServiceDep, item_id: ItemIdPath, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10
) -> SimilarResponse:
    return await service.similar(item_id, k)
