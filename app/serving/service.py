"""The workflows behind the API: recommend, explain, similar items, record events. Routers stay
thin and call these; this module knows nothing of HTTP beyond the domain errors it raises."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.cache import Cache, digest, served_from_cache
from app.db.tables import item_pair
from app.errors import Conflict, InvalidRequest, NotFound
from app.metrics import EVENTS, FALLBACKS, GENERATIONS
from app.reasons import evidence
from app.reasons.guard import Vocabulary
from app.reasons.template import style_of
from app.reasons.writers import Case, ReasonWriter, Written
from app.schemas import (
    EventBatch,
    EventsAccepted,
    ExplainResponse,
    Fact,
    Item,
    ModelVersions,
    PurchasedItem,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    SampledShopper,
    ShopperHistory,
    ShopperSample,
    SimilarItem,
    SimilarResponse,
)
from app.serving.bundle import Bundle
from app.serving.catalog import Catalog, CatalogItem, item_ids_of
from app.serving.inference import Batcher, InferencePool
from app.serving.recommender import Filters, Recommender
from app.serving.retriever import ScoreRequest
from app.serving.shoppers import (
    History,
    NewEvent,
    Reading,
    Shopper,
    conflicting_events,
    load_shopper,
    record_events,
    sample_shoppers,
)
from app.train.data import FloatArray, IntArray

SIMILAR_CO_PURCHASE_WEIGHT = 0.5  # similar items: cosine + this x co-purchase confidence


def as_item(entry: CatalogItem, locale: evidence.Locale) -> Item:
    return Item(
        item_id=entry.sku, title=entry.title, price=entry.price,
        price_text=None if entry.price is None else locale.money(entry.price), theme=entry.theme,
    )  # fmt: skip


@dataclass
class Service:
    bundle: Bundle
    catalog: Catalog
    recommender: Recommender
    engine: AsyncEngine
    cache: Cache
    pool: InferencePool
    batcher: Batcher[ScoreRequest, FloatArray]
    writer: ReasonWriter
    vocabulary: Vocabulary  # what the reason guard checks names against
    as_of: datetime | None
    locale: evidence.Locale
    session_gap_min: int  # purchases without an order id: one basket while closer than this
    cart_ttl_h: int  # the cart: added since the last purchase and less than this long ago

    @property
    def versions(self) -> ModelVersions:
        return ModelVersions(ranker=self.bundle.version, reason_writer=self.writer.name)

    def now(self) -> datetime:
        return self.as_of or datetime.now(UTC)

    def reading(self) -> Reading:
        """How a shopper's history is read now: the cart's age limit, and the events the model
        reads."""
        inputs = self.bundle.inputs
        # Rounded up to the second: a line added to the cart a moment ago, in this second, is
        # in it (rounded down, the page's next read would miss the item just added).
        return Reading(
            math.ceil(self.now().timestamp()), 3600 * self.cart_ttl_h, inputs.events_per_type,
            inputs.visit_gap_s,
        )  # fmt: skip

    async def recommend(self, request_id: str, req: RecommendRequest) -> RecommendResponse | bytes:
        """The response, or on a cache hit its stored JSON body as served (no re-validation)."""
        # Lists are cached per known shopper only: a session's items change with every view.
        if req.user_id is None or req.item_ids:
            return (await self._recommend(request_id, req))[0]
        user = req.user_id
        params = digest(req.model_dump(exclude={"user_id"}))
        hit = await self.cache.get_answer("lists", user, params)
        if hit is not None:
            return served_from_cache(hit, request_id)

        async def compute() -> RecommendResponse:
            response, settled = await self._recommend(request_id, req)
            if settled:  # a list holding a stand-in for a late reason is not kept
                body = response.model_dump_json(exclude={"request_id", "cached"})
                await self.cache.set_answer("lists", user, params, body.encode())
            return response

        response = await self.cache.single_flight(f"lists:{user}:{params}", compute)
        return response.model_copy(update={"request_id": request_id})

    async def _shopper(self, user_id: str | None) -> tuple[Shopper | None, History]:
        """The shopper (None if unknown or anonymous) and their history."""
        if user_id is None:
            return None, History.empty()
        async with self.engine.connect() as conn:
            # One statement, so no transaction: that saves the BEGIN and ROLLBACK round trips.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            found = await load_shopper(conn, user_id, self.catalog, self.reading())
        return found if found is not None else (None, History.empty())

    async def _recommend(
        self, request_id: str, req: RecommendRequest
    ) -> tuple[RecommendResponse, bool]:
        """The response, and whether it is settled: no reason in it stands in for a model's
        reason that timed out (and may still arrive)."""
        shopper, history = await self._shopper(req.user_id)
        country = (shopper.country if shopper else None) or req.country
        filters = Filters(
            k=req.k, exclude_purchased=req.exclude_purchased, theme=req.theme,
            min_price=req.min_price, max_price=req.max_price,
            exclude=tuple(self.catalog.sku_indices(req.exclude).tolist()),
        )  # fmt: skip
        session = self.catalog.sku_indices(req.item_ids)
        now = int(self.now().timestamp())
        request = self.recommender.model_input(history, session, country, now)
        if request is None:
            scores = self.recommender.retriever.popular_in_country(country)
        else:
            scores = await self.batcher.submit(request)
        ranking = self.recommender.select(scores, history, session, filters)
        if ranking.source == "popular":
            FALLBACKS.labels("popular_in_country").inc()
        items = [
            RecommendedItem(**as_item(r.item, self.locale).model_dump(), score=r.score, rank=r.rank)
            for r in ranking.items
        ]
        settled = True
        if req.with_reasons:
            targets = [r.item for r in ranking.items]
            explained = await self._reasons(
                shopper, req.user_id, targets, history, session, country
            )
            for item, (written, facts, _) in zip(items, explained, strict=True):
                item.reason, item.reason_writer = written.text, written.writer
                item.evidence = self._shown(facts)
            settled = not any(written.transient for written, _, _ in explained)
        response = RecommendResponse(
            request_id=request_id, user_id=req.user_id, source=ranking.source, items=items,
            cached=False, model_versions=self.versions,
        )  # fmt: skip
        return response, settled

    def _shown(self, facts: list[Fact]) -> list[Fact]:
        """Facts as the API shows them: an item named by the shop's id, not the database's."""
        return [
            fact.model_copy(
                update={"data": {**fact.data, "item_id": self.catalog.sku_of(fact.data["item_id"])}}
            )
            if "item_id" in fact.data
            else fact
            for fact in facts
        ]

    def _entry(self, item_id: str) -> CatalogItem:
        """The catalog item of a shop's item id; unknown: a 404 naming it."""
        entry = self.catalog.find(item_id)
        if entry is None:
            raise NotFound(f"item {item_id!r} is not in the catalog")
        return entry

    async def _evidence(
        self,
        shopper: Shopper | None,
        history: History,
        targets: list[CatalogItem],
        session: IntArray,
        country: str | None,
    ) -> list[list[Fact]]:
        """Each target's evidence, from the shopper's history, cart and session items."""
        now = self.now()
        anchors = await self.pool.run(
            self.recommender.anchors, history, session, country, int(now.timestamp()),
            [target.index for target in targets],
        )  # fmt: skip
        in_cart, in_session = set(history.cart.tolist()), set(session.tolist())
        drivers = [
            [
                evidence.Anchor(a, c, share, a.index in in_cart, a.index in in_session)
                for a, c, share in found
            ]
            for found in anchors
        ]
        mentioned = {t.item_id for t in targets} | {a.item.item_id for d in drivers for a in d}
        async with self.engine.connect() as conn:
            orders, usual = {}, None
            if shopper is not None:
                orders = await evidence.orders_of(conn, shopper, mentioned, now)
                usual = await evidence.usual_price(conn, shopper, now)
            return [
                await evidence.gather(
                    conn, shopper, country, target, found, now, self.locale, orders, usual
                )
                for target, found in zip(targets, drivers, strict=True)
            ]

    async def _reasons(
        self,
        shopper: Shopper | None,
        user: str | None,
        targets: list[CatalogItem],
        history: History,
        session: IntArray,
        country: str | None,
    ) -> list[tuple[Written, list[Fact], bool]]:
        """Each target's reason, evidence and whether the reason was cached. The reasons not
        cached are written as one batch. An anonymous session's reasons (user None) are
        written from its items and never cached: nobody could be served them again."""
        facts = await self._evidence(shopper, history, targets, session, country)
        keys = [digest([fact.model_dump() for fact in f]) for f in facts]
        found = [
            None
            if user is None
            else await self.cache.get_reason(user, t.item_id, self.writer.name, k)
            for t, k in zip(targets, keys, strict=True)
        ]
        missing = [i for i, hit in enumerate(found) if hit is None]

        # Late reasons land here too: no stored answer holds the stand-ins they replace
        # (answers with a transient reason are never cached), so caching them is enough.
        async def keep(written: list[Written]) -> None:
            for i, new in zip(missing, written, strict=True):
                GENERATIONS.labels(new.writer).inc()
                if user is not None and not new.transient:
                    await self.cache.set_reason(
                        user, targets[i].item_id, self.writer.name, keys[i], new
                    )

        style_key = user or "session"
        written = await self.writer.write(
            [Case(facts[i], style_of(style_key, targets[i].item_id)) for i in missing], keep
        )
        await keep(written)
        fresh = dict(zip(missing, written, strict=True))
        return [
            (fresh[i], facts[i], False) if hit is None else (hit, facts[i], True)
            for i, hit in enumerate(found)
        ]

    async def top_with_evidence(
        self, user_id: str, k: int, exclude_purchased: bool = False
    ) -> list[tuple[CatalogItem, list[Fact]]]:
        """A shopper's top-k items, each with its evidence (reason corpora and benchmarks)."""
        request = RecommendRequest(user_id=user_id, k=k, exclude_purchased=exclude_purchased)
        ranked, _ = await self._recommend("offline", request)
        shopper, history = await self._shopper(user_id)
        targets = [self._entry(item.item_id) for item in ranked.items]
        country = shopper.country if shopper else None
        none = np.zeros(0, dtype=np.int64)
        facts = await self._evidence(shopper, history, targets, none, country)
        return list(zip(targets, facts, strict=True))

    async def explain(self, request_id: str, user_id: str, item_id: str) -> ExplainResponse | bytes:
        """The response, or on a cache hit its stored JSON body as served."""
        target = self._entry(item_id)
        field = str(target.item_id)
        hit = await self.cache.get_answer("explain", user_id, field)
        if hit is not None:
            return served_from_cache(hit, request_id)
        shopper, history = await self._shopper(user_id)
        country = shopper.country if shopper else None
        none = np.zeros(0, dtype=np.int64)
        [(written, facts, cached)] = await self._reasons(
            shopper, user_id, [target], history, none, country
        )
        response = ExplainResponse(
            request_id=request_id, user_id=user_id, item=as_item(target, self.locale),
            reason=written.text, evidence=self._shown(facts), reason_writer=written.writer,
            cached=cached, model_versions=self.versions,
        )  # fmt: skip
        if not written.transient:  # a stand-in for a late reason is not kept
            body = response.model_dump_json(exclude={"request_id", "cached"})
            await self.cache.set_answer("explain", user_id, field, body.encode())
        return response

    async def history(self, user_id: str, limit: int) -> ShopperHistory:
        """The shopper's most recent distinct purchases and their cart."""
        shopper, history = await self._shopper(user_id)
        if shopper is None:
            raise NotFound(f"no shopper {user_id!r}")
        times_bought: dict[int, int] = {}
        last_bought: dict[int, int] = {}
        last_line: dict[int, int] = {}
        lines = zip(history.items.tolist(), history.item_times.tolist(), strict=True)
        for line, (index, at) in enumerate(lines):  # in time order: the last seen is the latest
            times_bought[index] = times_bought.get(index, 0) + 1
            last_bought[index], last_line[index] = at, line
        recent = sorted(last_line, key=lambda i: -last_line[i])[:limit]
        purchases = [
            PurchasedItem(
                **as_item(self.catalog.at(i), self.locale).model_dump(),
                times_bought=times_bought[i],
                last_bought=datetime.fromtimestamp(last_bought[i], UTC),
            )
            for i in recent
        ]  # fmt: skip
        cart = [as_item(self.catalog.at(i), self.locale) for i in history.cart.tolist()]
        return ShopperHistory(
            user_id=user_id, country=shopper.country, purchases=purchases, cart=cart
        )

    async def sample_shoppers(self, n: int, min_orders: int = 3) -> ShopperSample:
        async with self.engine.connect() as conn:
            rows = await sample_shoppers(conn, n, min_orders)
        return ShopperSample(
            shoppers=[SampledShopper(user_id=u, country=c, orders=o) for u, c, o in rows]
        )

    def item(self, item_id: str) -> Item:
        return as_item(self._entry(item_id), self.locale)

    async def similar(self, item_id: str, k: int) -> SimilarResponse:
        entry = self._entry(item_id)
        async with self.engine.connect() as conn:
            confidence = await _co_purchase_confidence(conn, entry.item_id)
        pairs = self.recommender.similar(entry.index, max(4 * k, 50))
        scored = [
            (
                other, similarity,
                confidence.get(other.item_id),
                similarity + SIMILAR_CO_PURCHASE_WEIGHT * confidence.get(other.item_id, 0.0),
            )
            for other, similarity in pairs
        ]  # fmt: skip
        # Items often bought together but not among the nearest vectors still compete.
        near = {other.item_id for other, *_ in scored}
        vectors = self.recommender.retriever.vectors
        for other_id, conf in confidence.items():
            other = self.catalog.get(other_id)
            if other is not None and other_id not in near:
                similarity = float(vectors[entry.index] @ vectors[other.index])
                scored.append(
                    (other, similarity, conf, similarity + SIMILAR_CO_PURCHASE_WEIGHT * conf)
                )
        scored.sort(key=lambda row: -row[3])
        return SimilarResponse(
            item=as_item(entry, self.locale),
            similar=[
                SimilarItem(
                    **as_item(other, self.locale).model_dump(), score=score, similarity=similarity,
                    co_purchase_confidence=conf,
                )
                for other, similarity, conf, score in scored[:k]
            ],
            model_versions=self.versions,
        )  # fmt: skip

    async def record(self, batch: EventBatch) -> EventsAccepted:
        received = self.now()
        async with self.engine.begin() as conn:
            # Any item in the database: one ingested since this process loaded its catalog too.
            ids = await item_ids_of(conn, {e.item_id for e in batch.events})
            missing = sorted({e.item_id for e in batch.events} - ids.keys())
            if missing:
                EVENTS.labels("rejected").inc(len(batch.events))
                shown = ", ".join(map(repr, missing[:20]))
                raise InvalidRequest(f"unknown item ids: {shown}", unknown_item_ids=missing[:100])
            events = [
                NewEvent(
                    event_id=e.event_id, user_id=e.user_id, item_id=ids[e.item_id],
                    event=e.event, quantity=e.quantity, order_id=e.order_id,
                    price=None if e.price is None else Decimal(f"{e.price:.2f}"),
                    occurred_at=e.occurred_at or received, country=e.country,
                    time_given=e.occurred_at is not None,
                )
                for e in batch.events
            ]  # fmt: skip
            new = await record_events(conn, events, self.session_gap_min)
            conflicts = await conflicting_events(conn, events, new)
            if conflicts:  # raising rolls the whole batch back
                EVENTS.labels("rejected").inc(len(events))
                shown = ", ".join(conflicts[:20])
                raise Conflict(
                    f"event_id reused for a different event: {shown}",
                    conflicting_event_ids=conflicts[:100],
                )
        for user in {e.user_id for e in events}:
            await self.cache.invalidate_user(user)
        stored = len(new)
        EVENTS.labels("stored").inc(stored)
        EVENTS.labels("duplicate").inc(len(events) - stored)
        return EventsAccepted(received=len(events), stored=stored, duplicates=len(events) - stored)


async def _co_purchase_confidence(conn: AsyncConnection, item_id: int) -> dict[int, float]:
    rows = await conn.execute(
        select(item_pair.c.other_item_id, item_pair.c.confidence)
        .where(item_pair.c.kind == "basket", item_pair.c.item_id == item_id)
        .order_by(item_pair.c.lift.desc())
        .limit(200)
    )
    return {int(row.other_item_id): float(row.confidence) for row in rows}
