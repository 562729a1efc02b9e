"""Rank the catalog for one request: what the model scores for a shopper with a history or
session items (model_input; the service batches these), then filters, exclusions and the top k
(select); popular-in-country for shoppers with nothing. Anchors: the past items that drive a
score (runs torch: call it in the inference pool)."""

from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.serving.catalog import Catalog, CatalogItem
from app.serving.retriever import Retriever, ScoreRequest, top_k
from app.serving.shoppers import History
from app.train.data import FloatArray, IntArray
from app.train.inputs import SEQUENCE_LENGTH, Events

Source = Literal["history", "session", "popular"]


@dataclass(frozen=True)
class Filters:
    k: int
    exclude_purchased: bool = False
    theme: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: tuple[int, ...] = ()  # bundle indices


@dataclass(frozen=True)
class Recommended:
    item: CatalogItem
    score: float
    rank: int


@dataclass(frozen=True)
class Ranking:
    items: list[Recommended]
    source: Source


class Recommender:
    def __init__(self, retriever: Retriever, catalog: Catalog) -> None:
        self.retriever = retriever
        self.catalog = catalog
        self.reads_events = retriever.bundle.inputs.events_per_type > 0

    def model_input(
        self, history: History, session: IntArray, country: str | None, now: int
    ) -> ScoreRequest | None:
        """What the model scores for this shopper; None when nothing is known of them.
        `session`: bundle indices of items in the current session (with the cart, they count
        as a basket being filled now, and are never recommended back)."""
        current = self._current(history, session)
        if len(history.items) + len(current) == 0:
            return None
        current, events = self._model_view(history, session)
        items, item_times, basket_times = self._history(history, current, now, drop=None)
        return ScoreRequest(items, item_times, basket_times, country, now, events)

    def select(
        self, scores: FloatArray, history: History, session: IntArray, filters: Filters
    ) -> Ranking:
        """Filters, exclusions and the top k of the scores (model, or popularity when nothing
        is known of the shopper)."""
        current = self._current(history, session)
        source: Source = (
            "history" if len(history.items) else "session" if len(current) else "popular"
        )
        allowed = self.catalog.allowed(filters.theme, filters.min_price, filters.max_price)
        excluded = [np.flatnonzero(~allowed), current, np.asarray(filters.exclude, dtype=np.int64)]
        if filters.exclude_purchased:
            excluded.append(history.purchased)
        top = top_k(scores, filters.k, np.concatenate(excluded))
        return Ranking(
            [
                Recommended(self.catalog.at(int(i)), float(scores[i]), rank)
                for rank, i in enumerate(top, start=1)
            ],
            source,
        )

    @staticmethod
    def _current(history: History, session: IntArray) -> IntArray:
        return np.unique(np.concatenate([history.cart, session]))

    def _model_view(self, history: History, session: IntArray) -> tuple[IntArray, Events | None]:
        """The basket being filled and the events, as the model reads them. A model that reads
        events saw, in training, what came before each basket's visit: so here the events before
        the ongoing visit (an item carted earlier is an add-to-cart there), and as the basket
        the session and what was carted during the visit."""
        if not self.reads_events:
            return self._current(history, session), None
        in_visit = history.cart[history.cart_times >= history.visit_start]
        current = np.unique(np.concatenate([in_visit, session]))
        return current, history.events.before(history.visit_start)

    def similar(self, index: int, k: int) -> list[tuple[CatalogItem, float]]:
        """Items closest to one item: cosine of the item vectors."""
        vectors = self.retriever.vectors
        similarity = vectors @ vectors[index]
        exclude = np.concatenate([[index], self.catalog.missing])
        top = top_k(similarity, k, exclude)
        return [(self.catalog.at(int(i)), float(similarity[i])) for i in top]

    def anchors(
        self,
        history: History,
        session: IntArray,
        country: str | None,
        now: int,
        targets: list[int],
        top: int = 3,
    ) -> list[list[tuple[CatalogItem, float, float]]]:
        """For each target, the past items that drive its score: each distinct item of the
        recent history is removed (every occurrence) and the targets re-scored; the contribution
        is the score drop, and its share that of all the positive drops. Best first, positive
        contributions only. One forward pass serves every target: the variants of the history
        are the same for all of them."""
        current, events = self._model_view(history, session)
        items = np.concatenate([history.items, current])
        recent = items[-SEQUENCE_LENGTH:]
        candidates = np.asarray(list(dict.fromkeys(recent[::-1].tolist())), dtype=np.int64)
        if len(candidates) == 0:
            return [[] for _ in targets]
        # Only purchases and the current basket are candidates (evidence states those); the
        # events stay in every variant.
        variants = [self._history(history, current, now, drop=None)]
        variants += [self._history(history, current, now, drop=int(c)) for c in candidates]
        requests = [ScoreRequest(*variant, country, now, events) for variant in variants]
        scores = self.retriever.score_requests(requests)[:, targets]
        drops = scores[0] - scores[1:]  # (candidates, targets)
        found, at = [], self.catalog.at
        for drop in drops.T:
            order = np.argsort(-drop, kind="stable")[:top]
            total = float(drop[drop > 0].sum())
            found.append(
                [
                    (at(int(candidates[i])), float(drop[i]), float(drop[i]) / total)
                    for i in order
                    if drop[i] > 0
                ]
            )
        return found

    @staticmethod
    def _history(
        history: History, current: IntArray, now: int, drop: int | None
    ) -> tuple[IntArray, IntArray, IntArray]:
        """The purchases plus the current basket (at `now`), optionally without one item."""
        keep = history.items != drop
        rest = current[current != drop]
        items = np.concatenate([history.items[keep], rest])
        item_times = np.concatenate([history.item_times[keep], np.full(len(rest), now)])
        basket_times = history.basket_times
        if len(current):
            basket_times = np.append(basket_times, now)
        return items, item_times.astype(np.int64), basket_times
