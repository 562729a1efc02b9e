"""/v1/recommend: ranked items for a shopper or an anonymous session, optionally with reasons."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.api.query import query_model, query_parameters
from app.api.responses import ERRORS, respond
from app.auth import READS
from app.deps import RequestIdDep, ServiceDep
from app.schemas import RecommendBody, RecommendRequest, RecommendResponse

router = APIRouter(prefix="/v1", tags=["recommend"], dependencies=[Depends(READS)])
RecommendQuery = Annotated[RecommendRequest, Depends(query_model(RecommendRequest))]


@router.get(
    "/recommend",
    summary="Recommendations for a shopper",
    description="Top-k items for a shopper (their purchases and cart). An unknown shopper gets"
    " popular items (in `country` when given), never a 404. The same parameters as POST, as"
    " query parameters (lists repeat: `exclude=1&exclude=2`).",
    response_model=RecommendResponse,
    responses=ERRORS,
    openapi_extra={"parameters": query_parameters(RecommendRequest)},
)
async def recommend_get(
    service: ServiceDep, request_id: RequestIdDep, query: RecommendQuery
) -> Any:
    return respond(await service.recommend(request_id, query))


@router.post(
    "/recommend",
    summary="Recommendations for a shopper and/or the current session",
    description="Like GET, plus the items of the current session (`item_ids`); without"
    " `user_id` an anonymous session is served from its items alone.",
    response_model=RecommendResponse,
    responses=ERRORS,
)
async def recommend_post(service: ServiceDep, request_id: RequestIdDep, body: RecommendBody) -> Any:
    return respond(await service.recommend(request_id, body))
