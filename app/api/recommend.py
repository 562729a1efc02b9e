"""/v1/recommend: ranked items for a shopper or an anonymous session, optionally with reasons."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.problems import ERRORS
from app.deps import RequestIdDep, ServiceDep
from app.schemas import MAX_K, RecommendRequest, RecommendResponse

router = APIRouter(prefix="/v1", tags=["recommend"])


@router.get(
    "/recommend",
    summary="Recommendations for a shopper",
    description="Top-k items for a known shopper (their purchases and cart). An unknown"
    " shopper gets popular items (in `country` when given), never a 404.",
    responses=ERRORS,
)
async def recommend_get(
    service: ServiceDep,
    request_id: RequestIdDep,
    user_id: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[\w.@:+-]+$")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    exclude_purchased: bool = False,
    theme: Annotated[str | None, Query(max_length=100)] = None,
    min_price: Annotated[float | None, Query(ge=0)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
    exclude: Annotated[list[int] | None, Query(max_length=500)] = None,
    with_reasons: bool = False,
) -> RecommendResponse:
    request = RecommendRequest(
        user_id=user_id, k=k, exclude_purchased=exclude_purchased, theme=theme,
        min_price=min_price, max_price=max_price, exclude=exclude or [],
        with_reasons=with_reasons,
    )  # fmt: skip
    return await service.recommend(request_id, request)


@router.post(
    "/recommend",
    summary="Recommendations for a shopper and/or the current session",
    description="Like GET, plus the items of the current session (`item_ids`); without"
    " `user_id` an anonymous session is served from its items alone.",
    responses=ERRORS,
)
async def recommend_post(
    service: ServiceDep, request_id: RequestIdDep, body: RecommendRequest
) -> RecommendResponse:
    return await service.recommend(request_id, body)
