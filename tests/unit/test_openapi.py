"""The OpenAPI document: every error is documented as problem+json, every tag is described, and
the examples captured from the real data still match the models they illustrate."""

import json
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel

from app.config import Settings
from app.main import create_app
from app.schemas import (
    EventBatch,
    EventsAccepted,
    ExplainResponse,
    Item,
    RecommendRequest,
    RecommendResponse,
    ShopperHistory,
    ShopperSample,
    SimilarResponse,
)

DOCUMENT = create_app().openapi()
OPERATIONS = [
    (f"{method.upper()} {path}", operation)
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
]
MODELS: dict[str, tuple[type[BaseModel] | None, type[BaseModel]]] = {
    "GET /v1/recommend": (None, RecommendResponse),
    "POST /v1/recommend": (RecommendRequest, RecommendResponse),
    "GET /v1/explain": (None, ExplainResponse),
    "GET /v1/items/{item_id}": (None, Item),
    "GET /v1/items/{item_id}/similar": (None, SimilarResponse),
    "GET /v1/shoppers/{user_id}/history": (None, ShopperHistory),
    "GET /v1/shoppers/sample": (None, ShopperSample),
    "POST /v1/events": (EventBatch, EventsAccepted),
}


def test_every_error_response_is_a_problem_document() -> None:
    for name, operation in OPERATIONS:
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")) and "content" in response:
                assert list(response["content"]) == ["application/problem+json"], (name, status)


def test_every_operation_has_a_summary_and_a_described_tag() -> None:
    described = {tag["name"] for tag in DOCUMENT["tags"] if tag.get("description")}
    for name, operation in OPERATIONS:
        assert operation.get("summary"), name
        assert set(operation["tags"]) <= described, name


@pytest.mark.parametrize("name", list(MODELS))
def test_examples_from_real_data_match_the_models(name: str) -> None:
    operation = dict(OPERATIONS)[name]
    request_model, response_model = MODELS[name]
    example: Any = operation["responses"]["200"]["content"]["application/json"]["example"]
    response_model.model_validate(example)
    if request_model is not None:
        body = operation["requestBody"]["content"]["application/json"]["example"]
        request_model.model_validate(body)


def item_ids(value: Any) -> list[Any]:
    """Every value under an item id key (`item_id`, `item_ids`, `exclude`), at any depth."""
    if isinstance(value, list):
        return [found for v in value for found in item_ids(v)]
    if not isinstance(value, dict):
        return []
    found = [v for k, v in value.items() if k == "item_id"]
    found += [i for k, v in value.items() if k in ("item_ids", "exclude") for i in v]
    return found + [i for k, v in value.items() for i in item_ids(v)]


def test_examples_name_items_by_the_shop_s_id_only() -> None:
    """Items are the shop's ids (strings) everywhere, evidence included; no second id field."""
    text = json.dumps(DOCUMENT)
    assert '"sku"' not in text
    found = item_ids(DOCUMENT["paths"])
    assert len(found) > 10
    assert all(isinstance(i, str) for i in found), found


def test_security_says_which_operations_need_a_key() -> None:
    operations = dict(OPERATIONS)
    assert operations["POST /v1/events"]["security"] == [{"HTTPBearer": []}]
    assert {} in operations["GET /v1/recommend"]["security"]  # a key is optional for reads
    keyed = create_app(Settings(read_requires_key=True)).openapi()
    assert keyed["paths"]["/v1/recommend"]["get"]["security"] == [{"HTTPBearer": []}]
    assert set(operations["POST /v1/events"]["responses"]) >= {"401", "403"}


def test_get_recommend_documents_its_query_as_fastapi_would() -> None:
    # GET /v1/recommend reads its query with app/api/query.py, not FastAPI's Query() model:
    # its documented parameters must be the ones FastAPI would have written for that model.
    reference = FastAPI()

    @reference.get("/recommend")
    async def recommend(query: Annotated[RecommendRequest, Query()]) -> None:
        return None

    expected = reference.openapi()["paths"]["/recommend"]["get"]["parameters"]
    assert DOCUMENT["paths"]["/v1/recommend"]["get"]["parameters"] == expected
