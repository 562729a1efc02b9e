"""Request and response models of the public API (separate in and out models)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.ingest.cleaning import MAX_ID_CHARS, SHOP_ID_PATTERN
from app.ingest.sessions import SESSION_PREFIX

MAX_K = 100
# A shop's own id of an item (its SKU) or a shopper, as the ingest stores it (at most
# MAX_ID_CHARS, whitespace runs folded to one space, none at either end): printable ASCII,
# single spaces inside, e.g. "85123A", "B0091JKVU0", "sku-12_3/x", "user@shop.example".
# ASCII only, spelled out: `\w` means more in Python's regexes than in the schema's (ECMA-262),
# and look-alike letters from other scripts have no place in an id. In a path, an id is
# percent-encoded as one segment (encodeURIComponent); a "/" in it may also go unencoded.
ShopId = Annotated[
    str,
    Field(
        min_length=1, max_length=MAX_ID_CHARS, pattern=SHOP_ID_PATTERN,
        examples=["85123A", "B0091JKVU0"],
    ),
]  # fmt: skip
EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:+-]+$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(Strict):
    user_id: ShopId | None = Field(
        None, description="The shopper's id; omit for an anonymous session."
    )
    item_ids: list[ShopId] = Field(
        [],
        max_length=50,
        description="Items of the current session (viewed, in the cart); ids the model does"
        " not know are left out.",
    )
    country: str | None = Field(
        None, max_length=64, description="Country of an anonymous or new shopper."
    )
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_purchased: bool = Field(False, description="Leave out items the shopper bought.")
    exclude: list[ShopId] = Field([], max_length=500, description="Item ids never to return.")
    theme: str | None = Field(None, max_length=100, description="Only items of this theme.")
    min_price: float | None = Field(
        None, ge=0, description="Only items at this price or more (none above max_price)."
    )
    max_price: float | None = Field(None, ge=0, description="Only items at this price or less.")
    with_reasons: bool = Field(False, description="Add a reason and its evidence to each item.")


class RecommendBody(RecommendRequest):
    """POST's body. JSON carries types, so they are taken as given: `true`, never `1` or "yes",
    and numbers, never strings. (A query string holds only strings: GET converts them.)"""

    exclude_purchased: bool = Field(
        False, strict=True, description="Leave out items the shopper bought."
    )
    min_price: float | None = Field(
        None, ge=0, strict=True, description="Only items at this price or more."
    )
    max_price: float | None = Field(
        None, ge=0, strict=True, description="Only items at this price or less."
    )
    with_reasons: bool = Field(
        False, strict=True, description="Add a reason and its evidence to each item."
    )


class Item(BaseModel):
    item_id: str = Field(description="The shop's own id of the item (its SKU).")
    title: str
    price: float | None = Field(description="Typical price paid, in the shop's currency.")
    price_text: str | None = Field(
        description="The price as the shop writes it: its currency and locale (RECS_CURRENCY,"
        ' RECS_LOCALE), e.g. "$1,299.99" or "1.299,99 €".'
    )
    theme: str | None


class Fact(BaseModel):
    """One piece of evidence behind a reason, computed by the system."""

    kind: str = Field(
        description="anchor, co_purchase, shared_theme, price, popularity, repurchase"
    )
    text: str = Field(description="The fact in plain words.")
    data: dict[str, Any] = Field(
        description="The fact's numbers and ids (`item_id`: the shop's id of the item)."
    )


class RecommendedItem(Item):
    score: float
    rank: int
    reason: str | None = None
    reason_writer: str | None = Field(
        None, description="Who wrote the reason: the configured writer, or template as fallback."
    )
    evidence: list[Fact] | None = None


class ModelVersions(BaseModel):
    ranker: str
    reason_writer: str


class RecommendResponse(BaseModel):
    request_id: str
    user_id: str | None
    source: Literal["history", "session", "popular"] = Field(
        description="history: the shopper's purchases (+ session); session: session items only;"
        " popular: popular in the shopper's country (nothing else known)."
    )
    items: list[RecommendedItem]
    cached: bool
    model_versions: ModelVersions


class SimilarItem(Item):
    score: float
    similarity: float = Field(description="Cosine of the two item vectors.")
    co_purchase_confidence: float | None = Field(
        description="P(this item in a basket | the anchor item in it), if seen together enough."
    )


class SimilarResponse(BaseModel):
    item: Item
    similar: list[SimilarItem]
    model_versions: ModelVersions


class ExplainResponse(BaseModel):
    request_id: str
    user_id: str
    item: Item
    reason: str
    evidence: list[Fact]
    reason_writer: str = Field(
        description="Who wrote the reason: the configured writer, or template as fallback."
    )
    cached: bool
    model_versions: ModelVersions


class Event(Strict):
    event_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=EVENT_ID_PATTERN,
        description="Client idempotency key.",
    )
    user_id: ShopId
    item_id: ShopId
    event: Literal["view", "click", "add_to_cart", "purchase"]
    quantity: int = Field(1, ge=1, le=100_000)
    price: float | None = Field(
        None, ge=0, le=1_000_000, strict=True, description="Unit price; stored to the cent."
    )
    order_id: str | None = Field(
        None, min_length=1, max_length=64,
        description="The order it belongs to. A purchase without one joins the shopper's session"
        " (purchases less than RECS_SESSION_GAP_MIN apart); `session:` starts no order id.",
    )  # fmt: skip
    occurred_at: datetime | None = Field(
        None, description="When it happened (timezone required); default: when received."
    )

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _a_date_not_a_number(cls, value: object) -> object:
        # Pydantic would read a number as Unix time; the schema promises an ISO 8601 string.
        if isinstance(value, int | float):
            raise ValueError("occurred_at is an ISO 8601 date-time string")
        return value

    country: str | None = Field(None, max_length=64, description="For a shopper new to us.")

    @field_validator("order_id")
    @classmethod
    def _not_a_session(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(SESSION_PREFIX):
            raise ValueError(
                f"order_id may not start with {SESSION_PREFIX!r}: it marks the sessions derived"
                " for purchases without one"
            )
        return value

    @model_validator(mode="after")
    def _aware(self) -> "Event":
        if self.occurred_at is not None and self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a timezone, e.g. 2011-12-09T12:00:00Z")
        return self


class PurchasedItem(Item):
    times_bought: int = Field(description="In how many of the shopper's orders.")
    last_bought: datetime


class ShopperHistory(BaseModel):
    user_id: str
    country: str | None
    purchases: list[PurchasedItem] = Field(description="Most recently bought first.")
    cart: list[Item] = Field(description="Added to the cart since the last purchase.")


class SampledShopper(BaseModel):
    user_id: str
    country: str | None
    orders: int


class ShopperSample(BaseModel):
    shoppers: list[SampledShopper]


class EventBatch(Strict):
    events: list[Event] = Field(min_length=1, max_length=1000)


class EventsAccepted(BaseModel):
    received: int
    stored: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events whose event_id was already stored (skipped).")


VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$"  # a folder name under models/, never a path


class ReloadRequest(Strict):
    version: str | None = Field(
        None, pattern=VERSION_PATTERN, description="A ranker version; omitted: the newest."
    )


class Reloaded(BaseModel):
    previous: str | None = Field(description="The ranker version served before.")
    serving: str = Field(description="The ranker version served from now on.")
    processes_notified: int = Field(
        description="Server processes told through Redis to switch too, this one included"
        " (0 when Redis is down: then only this process switched)."
    )


class ModelList(BaseModel):
    serving: str = Field(description="The ranker version this process serves.")
    available: list[str] = Field(description="Ranker versions on disk, oldest first.")
