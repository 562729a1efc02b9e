"""/v1/items: one item, and the items most like it, by the shop's own item id."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from app.api.responses import ERRORS
from app.auth import READS
from app.deps import ServiceDep
from app.schemas import MAX_K, Item, ShopId, SimilarResponse

router = APIRouter(prefix="/v1/items", tags=["items"], dependencies=[Depends(READS)])
# `:path`, so that an id holding "/" (sent as is, or as %2F, which the server decodes) reaches
# the route whole. /similar is declared first: it claims a path ending in "/similar".
ItemIdPath = Annotated[ShopId, Path(description="The shop's own id of the item (its SKU).")]


@router.get(
    "/{item_id:path}/similar",
    summary="Items like this one",
    description="Nearest item vectors, blended with how often the two are bought together.",
    responses=ERRORS,
)
async def similar_items(
    service: ServiceDep, item_id: ItemIdPath, k: Annotated[int, Query(ge=1, le=MAX_K)] = 10
) -> SimilarResponse:
    return await service.similar(item_id, k)


@router.get("/{item_id:path}", summary="One item", responses=ERRORS)
async def get_item(service: ServiceDep, item_id: ItemIdPath) -> Item:
    return service.item(item_id)
