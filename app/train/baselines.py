"""Peer recommenders the two-tower model is compared against, all fitted on the same split.

Every peer trains only on the baskets before the cutoff and, where it has knobs, picks them on
the validation shoppers (NDCG@10 over all items), so the test shoppers stay untouched. Scores are
full rows over the catalog, ranked by `metrics.evaluate` exactly like the two-tower model.
"""

import copy
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import implicit.cpu.als
import implicit.cpu.bpr
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm import tqdm

from app.train.data import FloatArray, IntArray, Snapshot
from app.train.metrics import Scorer, evaluate, history_items
from app.train.seeding import seeded_torch
from app.train.split import EvalSet, Split

Params = dict[str, float | int | str]
T = TypeVar("T")


class Recommender(Protocol):
    name: str
    params: Params  # the chosen hyper-parameters, for reports and manifests

    def fit(self, split: Split) -> None: ...

    def score(self, users: EvalSet) -> FloatArray: ...


def fitted(value: T | None) -> T:
    if value is None:
        raise RuntimeError("fit the recommender before scoring")
    return value


def validation_ndcg(split: Split, scorer: Scorer) -> float:
    """The tuning target: NDCG@10 over all items on the validation shoppers."""
    return evaluate(split.snapshot, split.validation, scorer, new_only=False).ndcg_10


def tune(
    split: Split, grid: Sequence[Params], fit: Callable[[Params], Scorer], desc: str
) -> tuple[Params, Scorer]:
    """Fits one model per grid point and keeps the best on validation (the first on ties)."""
    best: tuple[float, Params, Scorer] | None = None
    for params in tqdm(grid, desc=desc, disable=len(grid) < 2):
        scorer = fit(params)
        ndcg = validation_ndcg(split, scorer)
        if best is None or ndcg > best[0]:
            best = (ndcg, params, scorer)
    _, params, scorer = fitted(best)
    return params, scorer


def train_tokens(split: Split) -> tuple[IntArray, IntArray]:
    """(basket, item) of every purchase line of a training basket, in (shopper, time) order."""
    snapshot = split.snapshot
    baskets = np.repeat(np.arange(snapshot.n_baskets), np.diff(snapshot.basket_offsets))
    in_train = np.zeros(snapshot.n_baskets, dtype=bool)
    in_train[split.train_baskets] = True
    keep = in_train[baskets]
    return baskets[keep], snapshot.basket_items[keep]


def item_popularity(split: Split) -> FloatArray:
    """Number of training baskets holding each item (a basket holds an item at most once)."""
    _, items = train_tokens(split)
    return np.bincount(items, minlength=split.snapshot.n_items).astype(np.float32)


def count_matrix(rows: IntArray, items: IntArray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Sparse (row, item) -> number of (row, item) pairs given."""
    ones = np.ones(len(items), dtype=np.float32)
    return sp.csr_matrix((ones, (rows, items)), shape=shape)


def history_counts(snapshot: Snapshot, users: EvalSet) -> sp.csr_matrix:
    """(shopper, item) -> number of the shopper's history baskets holding the item."""
    parts = [
        history_items(snapshot, int(start), int(end))
        for start, end in zip(users.history_start, users.history_end, strict=True)
    ]
    rows = np.repeat(np.arange(len(users)), [len(part) for part in parts])
    items = np.concatenate([np.zeros(0, dtype=np.int64), *parts])
    return count_matrix(rows, items, (len(users), snapshot.n_items))


def train_user_items(split: Split) -> sp.csr_matrix:
    """(shopper, item) -> number of the shopper's training baskets holding the item."""
    baskets, items = train_tokens(split)
    shape = (split.snapshot.n_users, split.snapshot.n_items)
    return count_matrix(split.snapshot.basket_user[baskets], items, shape)


class GridTuned(ABC):
    """A peer with a small hyper-parameter grid: one model per grid point, and the best on the
    validation shoppers is kept (`tune`)."""

    name: str
    GRID: Sequence[Params]

    def __init__(self, seed: int = 0, grid: Sequence[Params] | None = None) -> None:
        self.seed = seed
        self.grid = self.GRID if grid is None else grid
        self.params: Params = {}
        self.scorer: Scorer | None = None

    @abstractmethod
    def fitter(self, split: Split) -> Callable[[Params], Scorer]:
        """Prepare what every grid point shares; return the fit of one grid point."""

    def fit(self, split: Split) -> None:
        self.params, self.scorer = tune(split, self.grid, self.fitter(split), self.name)

    def score(self, users: EvalSet) -> FloatArray:
        return fitted(self.scorer)(users)


class MostPopular:
    """Items by the number of training baskets holding them; the same list for everyone."""

    name = "MostPopular"

    def __init__(self) -> None:
        self.params: Params = {}
        self.popularity: FloatArray | None = None

    def fit(self, split: Split) -> None:
        self.popularity = item_popularity(split)

    def score(self, users: EvalSet) -> FloatArray:
        return np.tile(fitted(self.popularity), (len(users), 1))


class PopularInCountry(GridTuned):
    """Popularity among the shoppers of the shopper's country, smoothed towards the global one.

    score = training baskets of the country holding the item + m x the share of all training
    baskets holding it: `m` pseudo-baskets of global behaviour, so that ties and countries with
    few shoppers fall back to global popularity. `m` is picked on validation.
    """

    name = "PopularInCountry"
    GRID: Sequence[Params] = tuple({"pseudo_baskets": m} for m in (1.0, 10.0, 100.0))

    def fitter(self, split: Split) -> Callable[[Params], Scorer]:
        snapshot = split.snapshot
        baskets, items = train_tokens(split)
        country = snapshot.user_country[snapshot.basket_user[baskets]]
        n_countries = len(snapshot.countries)
        counts = np.bincount(
            country * snapshot.n_items + items, minlength=n_countries * snapshot.n_items
        ).reshape(n_countries, snapshot.n_items)
        share = item_popularity(split) / max(len(split.train_baskets), 1)

        def fit_one(params: Params) -> Scorer:
            table = (counts + float(params["pseudo_baskets"]) * share).astype(np.float32)
            return lambda users: table[snapshot.user_country[users.users]]

        return fit_one


class Repeat:
    """The shopper's own most-bought items (number of history baskets holding them), the most
    recently bought first on ties, then the globally popular items."""

    name = "Repeat"

    def __init__(self) -> None:
        self.params: Params = {}
        self.snapshot: Snapshot | None = None
        self.popularity: FloatArray | None = None

    def fit(self, split: Split) -> None:
        self.snapshot = split.snapshot
        self.popularity = item_popularity(split)

    def score(self, users: EvalSet) -> FloatArray:
        snapshot, popularity = fitted(self.snapshot), fitted(self.popularity)
        counts = np.zeros((len(users), snapshot.n_items), dtype=np.float32)
        recency = np.zeros_like(counts)
        for row, (start, end) in enumerate(
            zip(users.history_start.tolist(), users.history_end.tolist(), strict=True)
        ):
            for basket in range(start, end):
                items = snapshot.items_of(basket)
                counts[row, items] += 1.0
                recency[row, items] = (basket - start + 1) / (end - start)
        # Bought items score count + a recency bonus in (0, 0.49], so at least 1; the others
        # score their popularity scaled into [0, 0.49].
        fallback = 0.49 * popularity / max(float(popularity.max()), 1.0)
        return np.where(counts > 0, counts + 0.49 * recency, fallback[None, :])


def cosine_similarity(matrix: sp.csr_matrix, neighbours: int | None) -> FloatArray:
    """Item-item cosine of the columns of a binary matrix, without self-similarity; each row
    keeps only its `neighbours` most similar items (all of them when None)."""
    binary = (matrix > 0).astype(np.float32)
    co = np.asarray((binary.T @ binary).toarray(), dtype=np.float32)
    norms = np.sqrt(np.diag(co))
    norms[norms == 0] = 1.0
    sim = co / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    if neighbours is not None and neighbours < sim.shape[1]:
        top = np.argpartition(-sim, neighbours, axis=1)[:, :neighbours]
        pruned = np.zeros_like(sim)
        np.put_along_axis(pruned, top, np.take_along_axis(sim, top, axis=1), axis=1)
        sim = pruned
    return sim.astype(np.float32, copy=False)


KNN_NEIGHBOURS: tuple[int | str, ...] = (20, 100, "all")


class ItemKNN(GridTuned):
    """Item-based collaborative filtering on co-purchases: an item scores the sum of its cosine
    similarities to the items the shopper bought. Whether the co-purchase matrix has baskets or
    shoppers as rows, and the neighbourhood size, are picked on validation."""

    name = "ItemKNN"
    GRID: Sequence[Params] = tuple(
        {"rows": rows, "neighbours": k}
        for rows, k in itertools.product(("basket", "shopper"), KNN_NEIGHBOURS)
    )

    def fitter(self, split: Split) -> Callable[[Params], Scorer]:
        snapshot = split.snapshot
        baskets, items = train_tokens(split)
        basket_rows = np.searchsorted(split.train_baskets, baskets)
        shape = (len(split.train_baskets), snapshot.n_items)
        matrices = {
            "basket": count_matrix(basket_rows, items, shape),
            "shopper": train_user_items(split),
        }

        def fit_one(params: Params) -> Scorer:
            k = params["neighbours"]
            sim = cosine_similarity(
                matrices[str(params["rows"])], k if isinstance(k, int) else None
            )

            def scorer(users: EvalSet) -> FloatArray:
                bought = (history_counts(snapshot, users) > 0).astype(np.float32)
                return np.asarray(bought @ sim, dtype=np.float32)

            return scorer

        return fit_one


class ALS(GridTuned):
    """Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) from `implicit`, with
    the shopper x item count of training baskets as confidence. An evaluated shopper is folded
    in by the closed-form least-squares step on their history row."""

    name = "ALS"
    GRID: Sequence[Params] = tuple(
        {"factors": f, "regularization": r, "iterations": i}
        for f, r, i in itertools.product((128, 256), (10.0, 30.0), (15, 30))
    )

    def fitter(self, split: Split) -> Callable[[Params], Scorer]:
        snapshot = split.snapshot
        user_items = train_user_items(split)

        def fit_one(params: Params) -> Scorer:
            # implicit parallelises itself; a threaded BLAS underneath only oversubscribes.
            with threadpool_limits(1, "blas"):
                model = implicit.cpu.als.AlternatingLeastSquares(
                    factors=int(params["factors"]),
                    regularization=float(params["regularization"]),
                    iterations=int(params["iterations"]),
                    random_state=self.seed,
                )
                model.fit(user_items, show_progress=False)

            def scorer(users: EvalSet) -> FloatArray:
                history = history_counts(snapshot, users)
                with threadpool_limits(1, "blas"):
                    vectors = model.recalculate_user(np.arange(len(users)), history)
                return np.asarray(vectors @ model.item_factors.T, dtype=np.float32)

            return scorer

        return fit_one


class BPR(GridTuned):
    """Bayesian Personalised Ranking (Rendle et al. 2009) from `implicit` on the shopper x item
    matrix of training baskets, on one thread so that its SGD is reproducible. implicit cannot
    fold a shopper into BPR; an evaluated shopper's history is exactly their training baskets,
    so their learned vector is their fold-in."""

    name = "BPR"
    GRID: Sequence[Params] = tuple(
        {"factors": f, "learning_rate": 0.05, "regularization": r, "iterations": 100}
        for f, r in itertools.product((128, 256), (0.0, 0.001))
    )

    def fitter(self, split: Split) -> Callable[[Params], Scorer]:
        user_items = train_user_items(split)

        def fit_one(params: Params) -> Scorer:
            model = implicit.cpu.bpr.BayesianPersonalizedRanking(
                factors=int(params["factors"]),
                learning_rate=float(params["learning_rate"]),
                regularization=float(params["regularization"]),
                iterations=int(params["iterations"]),
                num_threads=1,
                random_state=self.seed,
            )
            model.fit(user_items, show_progress=False)

            def scorer(users: EvalSet) -> FloatArray:
                vectors = model.user_factors[users.users]
                return np.asarray(vectors @ model.item_factors.T, dtype=np.float32)

            return scorer

        return fit_one


class SequenceNet(nn.Module):
    """A next-item network: (batch, length) item indices + 1 (0 pads, on the right) -> one
    hidden state per position, scored against `item_embedding` (row 0 is the padding item)."""

    item_embedding: nn.Embedding


class SelfAttention(nn.Module):
    """RecBole's multi-head self-attention sub-layer: post-norm residual, additive mask."""

    def __init__(self, hidden: int, heads: int, attn_dropout: float, dropout: float, eps: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out_dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        size = hidden // self.heads

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.heads, size).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        weights = (q @ k.transpose(-1, -2)) / math.sqrt(size) + mask
        context = (self.attn_dropout(weights.softmax(dim=-1)) @ v).transpose(1, 2)
        out = self.dense(context.reshape(batch, length, hidden))
        return self.layer_norm(self.out_dropout(out) + x)  # type: ignore[no-any-return]


class FeedForward(nn.Module):
    """RecBole's point-wise feed-forward sub-layer: post-norm residual."""

    def __init__(self, hidden: int, inner: int, dropout: float, eps: float):
        super().__init__()
        self.dense_1 = nn.Linear(hidden, inner)
        self.dense_2 = nn.Linear(inner, hidden)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.dense_2(F.gelu(self.dense_1(x))))
        return self.layer_norm(out + x)  # type: ignore[no-any-return]


class SASRecNet(SequenceNet):
    """SASRec (Kang & McAuley 2018) as RecBole 1.2.1 builds it, with its default sizes."""

    def __init__(
        self,
        n_items: int,
        max_len: int = 50,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        inner: int = 256,
        dropout: float = 0.5,
        attn_dropout: float = 0.5,
        eps: float = 1e-12,
        init_range: float = 0.02,
    ):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.attention = nn.ModuleList(
            SelfAttention(hidden, heads, attn_dropout, dropout, eps) for _ in range(layers)
        )
        self.feed_forward = nn.ModuleList(
            FeedForward(hidden, inner, dropout, eps) for _ in range(layers)
        )
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=init_range)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        length = seq.shape[1]
        positions = self.position_embedding(torch.arange(length, device=seq.device))
        x: torch.Tensor = self.dropout(self.layer_norm(self.item_embedding(seq) + positions))
        # Causal, and padding is never attended to: -10000 before the softmax, as in RecBole.
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        allowed = causal & (seq != 0)[:, None, None, :]
        mask = torch.zeros(allowed.shape, device=seq.device).masked_fill(~allowed, -10000.0)
        for attention, feed_forward in zip(self.attention, self.feed_forward, strict=True):
            x = feed_forward(attention(x, mask))
        return x


class GRU4RecNet(SequenceNet):
    """GRU4Rec (Hidasi et al. 2016) as RecBole 1.2.1 builds it, with its default sizes."""

    def __init__(self, n_items: int, embedding: int = 64, hidden: int = 128, dropout: float = 0.3):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, embedding, padding_idx=0)
        self.emb_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(embedding, hidden, num_layers=1, bias=False, batch_first=True)
        self.dense = nn.Linear(hidden, embedding)
        nn.init.xavier_normal_(self.item_embedding.weight)
        nn.init.xavier_uniform_(self.gru.get_parameter("weight_hh_l0"))
        nn.init.xavier_uniform_(self.gru.get_parameter("weight_ih_l0"))

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        # Padding sits after the real items, so a one-way GRU never carries it into them.
        hidden, _ = self.gru(self.emb_dropout(self.item_embedding(seq)))
        return self.dense(hidden)  # type: ignore[no-any-return]


def training_windows(split: Split, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each shopper's most recent `length` (item, next item) pairs of their training sequence
    (baskets in time order, items in stored order, item index + 1), right-padded with 0."""
    baskets, items = train_tokens(split)
    shoppers = split.snapshot.basket_user[baskets]
    inputs: list[IntArray] = []
    targets: list[IntArray] = []
    for sequence in np.split(items + 1, np.flatnonzero(np.diff(shoppers)) + 1):
        start = max(0, len(sequence) - 1 - length)
        if len(sequence) >= 2:
            pad = (0, length - (len(sequence) - 1 - start))
            inputs.append(np.pad(sequence[start:-1], pad))
            targets.append(np.pad(sequence[start + 1 :], pad))
    if not inputs:
        empty = torch.zeros((0, length), dtype=torch.int64)
        return empty, empty.clone()
    return torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(targets))


def train_step(
    net: SequenceNet, optimizer: torch.optim.Optimizer, inputs: torch.Tensor, targets: torch.Tensor
) -> float:
    """One step of full-softmax cross-entropy over every real (non-padding) position."""
    real = targets != 0
    logits = net(inputs)[real] @ net.item_embedding.weight.T
    loss = F.cross_entropy(logits, targets[real])
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    optimizer.step()
    return loss.item()


class SequentialPeer(ABC):
    """Own implementation of RecBole defaults: Adam at lr 1e-3, cross-entropy over the full
    catalog, sequences of at most 50 items, early stopping on validation NDCG@10 (all items).

    One deliberate change from RecBole: instead of its prefix expansion (one sample per prefix of
    the whole sequence, predicting the item after it), each shopper contributes the window of
    their last 50 training items, and every position of it predicts its next item at once
    (padding masked out of the loss), as the original SASRec trains. That is a third of
    RecBole's samples per epoch, which buys the epochs that early stopping needs within the CPU
    budget. A batch holds 2048 // 50 windows, about the 2048 predicted items of RecBole's
    train_batch_size. Scoring: the hidden state after the shopper's last 50 history items,
    dotted with every item's embedding.
    """

    name: str
    max_len = 50
    batch_positions = 2048
    learning_rate = 1e-3

    def __init__(self, seed: int, max_epochs: int = 20, patience: int = 3) -> None:
        self.seed = seed
        self.max_epochs = max_epochs
        self.patience = patience
        self.params: Params = {}
        self.snapshot: Snapshot | None = None
        self.net: SequenceNet | None = None

    @abstractmethod
    def build(self, n_items: int) -> SequenceNet: ...

    def fit(self, split: Split) -> None:
        self.snapshot = split.snapshot
        with seeded_torch(self.seed):
            net = self.net = self.build(split.snapshot.n_items)
            inputs, targets = training_windows(split, self.max_len)
            optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
            shuffle = np.random.default_rng(self.seed)
            batches = max(1, math.ceil(len(inputs) * self.max_len / self.batch_positions))
            best, best_epoch, best_state = -1.0, 0, copy.deepcopy(net.state_dict())
            progress = tqdm(range(1, self.max_epochs + 1), desc=self.name)
            for epoch in progress:
                net.train()
                losses = [
                    train_step(net, optimizer, inputs[batch], targets[batch])
                    for batch in np.array_split(shuffle.permutation(len(inputs)), batches)
                ]
                ndcg = validation_ndcg(split, self.score)
                progress.set_postfix(loss=f"{np.mean(losses):.3f}", val_ndcg=f"{ndcg:.4f}")
                if ndcg > best:
                    best, best_epoch, best_state = ndcg, epoch, copy.deepcopy(net.state_dict())
                elif epoch - best_epoch >= self.patience:
                    break
            net.load_state_dict(best_state)
        self.params = {
            "best_epoch": best_epoch,
            "max_epochs": self.max_epochs,
            "patience": self.patience,
        }

    def score(self, users: EvalSet) -> FloatArray:
        snapshot, net = fitted(self.snapshot), fitted(self.net)
        seqs = np.zeros((len(users), self.max_len), dtype=np.int64)
        last = np.zeros(len(users), dtype=np.int64)
        for row, (start, end) in enumerate(
            zip(users.history_start.tolist(), users.history_end.tolist(), strict=True)
        ):
            tail = history_items(snapshot, start, end)[-self.max_len :] + 1
            seqs[row, : len(tail)] = tail
            last[row] = max(len(tail) - 1, 0)
        net.eval()
        with torch.inference_mode():
            hidden = net(torch.from_numpy(seqs))[torch.arange(len(users)), torch.from_numpy(last)]
            scores = hidden @ net.item_embedding.weight[1:].T
        return np.asarray(scores.numpy(), dtype=np.float32)


class SASRec(SequentialPeer):
    """SASRec, own implementation of RecBole defaults: 2 layers, 2 heads, hidden 64, inner 256,
    dropout 0.5 (hidden and attention), GELU, layer-norm eps 1e-12, N(0, 0.02) init; trained as
    `SequentialPeer` describes."""

    name = "SASRec"

    def build(self, n_items: int) -> SequenceNet:
        return SASRecNet(n_items, self.max_len)


class GRU4Rec(SequentialPeer):
    """GRU4Rec, own implementation of RecBole defaults: embedding 64, one GRU layer of 128
    without bias, embedding dropout 0.3, a dense layer back to 64 scored against the item
    embeddings; trained as `SequentialPeer` describes."""

    name = "GRU4Rec"

    def build(self, n_items: int) -> SequenceNet:
        return GRU4RecNet(n_items)


def all_peers(seed: int) -> list[Recommender]:
    """The eight peers, in report order; the seeded ones share `seed`."""
    return [
        MostPopular(),
        PopularInCountry(),
        Repeat(),
        ItemKNN(),
        ALS(seed),
        BPR(seed),
        SASRec(seed),
        GRU4Rec(seed),
    ]
