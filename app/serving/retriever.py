"""Top-k retrieval over the bundle's item vectors: exact, one matmul over the catalog.

Three paths, from most to least known about the shopper:
- a purchase history (and/or session items): the two-tower score with the repeat bonus;
- nothing at all: popular in the shopper's country (everyone's, when the country is unknown).

Items are numbered as the catalog numbers them: the bundle's n items, then the new items, whose
vectors the item tower makes from title, theme and price band alone. The model's own item
matrix keeps its padding row at n, so a new item i sits at row i + 1 there.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from app.serving.bundle import Bundle
from app.serving.catalog import NewItems
from app.train.data import FloatArray, IntArray
from app.train.fit import as_tensors
from app.train.inputs import Events, shopper_row, stack


@dataclass(frozen=True)
class ScoreRequest:
    """One shopper as the model scores them: purchases in time order (bundle indices), each
    item's basket time, one time per basket, country, the time to score at and, for a model
    that reads them, the non-purchase events before the ongoing visit."""

    items: IntArray
    item_times: IntArray
    basket_times: IntArray
    country: str | None
    now: int
    events: Events | None = None


class Retriever:
    def __init__(self, bundle: Bundle, new_items: NewItems | None = None) -> None:
        self.bundle = bundle
        self.inputs = bundle.inputs
        self.country_index = {name: n for n, name in enumerate(bundle.countries)}
        self.theme_index = {name: n for n, name in enumerate(bundle.item_side.themes)}
        new = self._new_item_vectors(new_items)
        self.item_matrix = torch.cat([bundle.item_vectors, new])  # the model's rows
        # Unit vectors in catalog order (no padding row): for similar items.
        self.vectors: FloatArray = torch.cat([bundle.item_vectors[:-1], new]).numpy()
        # A new item was in no basket of the window the bundle counted.
        self.popular = np.pad(bundle.popular, ((0, 0), (0, len(new)))).astype(np.float32)

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
        """(len(requests), catalog items): many shoppers (or variants of one) in one forward
        pass."""
        n = self.bundle.n_items
        with torch.inference_mode():
            inputs = as_tensors(stack([self.model_row(r) for r in requests]))
            logits = self.bundle.model.scores(self.item_matrix, inputs)
        scores = torch.cat([logits[:, :n], logits[:, n + 1 :]], dim=1)  # the padding row out
        return np.asarray(scores.float().numpy(), dtype=np.float32)

    def model_row(self, r: ScoreRequest) -> tuple[IntArray, ...]:
        """The model's inputs for one request, as training builds them (inputs.shopper_row)."""
        return shopper_row(
            self._model_rows(r.items), r.item_times, r.basket_times, self.country_of(r.country),
            r.now, self.bundle.n_items, self._model_events(r.events), self.inputs,
        )  # fmt: skip

    def _model_rows(self, items: IntArray) -> IntArray:
        """Catalog indices as rows of the model's item matrix (new items follow its padding)."""
        n = self.bundle.n_items
        return np.where(items >= n, items + 1, items)

    def _model_events(self, events: Events | None) -> Events | None:
        if events is None:
            return None
        return Events(self._model_rows(events.items), events.times, events.types)

    def score_session(self, items: IntArray, country: str | None, now: int) -> FloatArray:
        """A shopper known only by the 1-3 items of the current session."""
        times = np.full(len(items), now, dtype=np.int64)
        return self.score_history(items, times, np.asarray([now], dtype=np.int64), country, now)

    def popular_in_country(self, country: str | None) -> FloatArray:
        return np.asarray(self.popular[self.country_of(country)], dtype=np.float32)

    def _new_item_vectors(self, new_items: NewItems | None) -> torch.Tensor:
        """(m, d) unit vectors for items the model never saw, from their title vector, theme
        and price band alone: the item tower without its ID part. A theme the model was not
        trained with counts as none."""
        dim = self.bundle.item_vectors.shape[1]
        if new_items is None or not new_items.theme:
            return torch.zeros(0, dim)
        m = len(new_items.theme)
        theme = [self.theme_index.get(t or "", 0) for t in new_items.theme]
        # As the training data numbers price bands: 0 unknown, else the band's index + 1.
        band = [0 if b is None else b + 1 for b in new_items.price_band]
        with torch.inference_mode():
            vectors = self.bundle.model.items(
                torch.zeros(m, dtype=torch.long), torch.from_numpy(new_items.text),
                torch.tensor(theme), torch.tensor(band), torch.zeros(m, dtype=torch.bool),
            )  # fmt: skip
            return torch.nn.functional.normalize(vectors, dim=-1)

    def nearest_items(self, vector: FloatArray, k: int) -> IntArray:
        """Catalog items closest to `vector` (cosine)."""
        return top_k(self.vectors @ vector, k)


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
