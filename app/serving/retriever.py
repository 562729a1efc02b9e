"""Top-k retrieval over the bundle's item vectors: exact, one matmul over the catalog.

Three paths, from most to least known about the shopper:
- a purchase history (and/or session items): the two-tower score with the repeat bonus;
- nothing at all: popular in the shopper's country (everyone's, when the country is unknown).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from app.serving.bundle import Bundle
from app.train.data import FloatArray, IntArray
from app.train.fit import score_all
from app.train.inputs import shopper_row, stack


@dataclass(frozen=True)
class ScoreRequest:
    """One shopper as the model scores them: purchases in time order (bundle indices), each
    item's basket time, one time per basket, country and the time to score at."""

    items: IntArray
    item_times: IntArray
    basket_times: IntArray
    country: str | None
    now: int


class Retriever:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.country_index = {name: n for n, name in enumerate(bundle.countries)}
        self.sku_index = {sku: n for n, sku in enumerate(bundle.item_skus)}

    def country_of(self, country: str | None) -> int:
        return self.country_index.get(country or "", 0)

    def score_history(
        self,
        items: IntArray,
        item_times: IntArray,
        basket_times: IntArray,
        country: str | None,
        now: int,
    ) -> FloatArray:
        """Scores of every item for a shopper whose past purchases (item indices in time order,
        each with its basket's time; basket_times one per basket) are given, as of `now`.
        Items in the current session count as a basket at `now`."""
        scores = self.score_requests([ScoreRequest(items, item_times, basket_times, country, now)])
        return np.asarray(scores[0], dtype=np.float32)

    def score_requests(self, requests: Sequence["ScoreRequest"]) -> FloatArray:
        """(len(requests), n_items): many shoppers (or variants of one) in one forward pass."""
        rows = [
            shopper_row(
                r.items, r.item_times, r.basket_times, self.country_of(r.country), r.now,
                self.bundle.n_items,
            )
            for r in requests
        ]  # fmt: skip
        with torch.inference_mode():
            scores = score_all(self.bundle.model, self.bundle.item_vectors, stack(rows))
        return np.asarray(scores, dtype=np.float32)

    def score_session(self, items: IntArray, country: str | None, now: int) -> FloatArray:
        """A shopper known only by the 1-3 items of the current session."""
        times = np.full(len(items), now, dtype=np.int64)
        return self.score_history(items, times, np.asarray([now], dtype=np.int64), country, now)

    def popular_in_country(self, country: str | None) -> FloatArray:
        return np.asarray(self.bundle.popular[self.country_of(country)], dtype=np.float32)

    def vector_for_new_item(
        self, title_vector: FloatArray, theme: int, price_band: int
    ) -> FloatArray:
        """A unit vector for an item the model never saw, from its title (MiniLM vector), theme
        and price band alone: the item tower without its ID part."""
        model = self.bundle.model
        with torch.inference_mode():
            vector = model.items(
                torch.zeros(1, dtype=torch.long), torch.from_numpy(title_vector[None, :]),
                torch.tensor([theme]), torch.tensor([price_band]), torch.zeros(1, dtype=torch.bool),
            )  # fmt: skip
            vector = torch.nn.functional.normalize(vector, dim=-1)
        return vector[0].numpy()

    def nearest_items(self, vector: FloatArray, k: int) -> IntArray:
        """Known items closest to `vector` (cosine)."""
        similarity = self.bundle.item_vectors[:-1].numpy() @ vector
        return top_k(similarity, k)


def top_k(scores: FloatArray, k: int, exclude: IntArray | None = None) -> IntArray:
    """Indices of the k highest scores, best first; `exclude` never appears."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if exclude is not None and len(exclude):
        scores[exclude] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")].astype(np.int64)
