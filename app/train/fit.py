"""Fit the two-tower model: seeded, with progress bars and early stopping on validation."""

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from app.train.data import FloatArray, ItemSide, Snapshot
from app.train.inputs import HistoryIndex, SequenceSpec, ShopperInputs, stack
from app.train.losses import inclusion_log_q, sampled_softmax_loss
from app.train.metrics import evaluate
from app.train.seeding import seeded_torch
from app.train.split import EvalSet, Split
from app.train.two_tower import TwoTower, TwoTowerConfig

DEFAULT_EVENTS_PER_TYPE = 10


@dataclass(frozen=True)
class FitSettings:
    seed: int = 0
    max_epochs: int = 12
    patience: int = 4
    batch_size: int = 256
    learning_rate: float = 3e-3
    # The repeat scorer is a small MLP over count/recency features that must reach large logits;
    # at the towers' rate it lags behind for many epochs.
    repeat_learning_rate: float = 1.5e-2
    weight_decay: float = 1e-5
    uniform_negatives: int = 2048
    # Weight of the loss on items the shopper has not bought before (see _step).
    new_items_weight: float = 0.3
    # Views, clicks and add-to-carts in the sequence: the last N of each type before the visit
    # (0: purchases only); a visit ends after this many minutes without activity.
    events_per_type: int = DEFAULT_EVENTS_PER_TYPE
    visit_gap_min: int = 60


@dataclass
class FitResult:
    model: TwoTower
    best_epoch: int
    validation: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def sequence_spec(snapshot: Snapshot, settings: FitSettings) -> SequenceSpec:
    """What the sequence reads: other events when the shop has any. A shop with purchases only
    trains the purchases-only model, input for input."""
    per_type = settings.events_per_type if len(snapshot.event_item) else 0
    return SequenceSpec(per_type, 60 * settings.visit_gap_min)


def item_tensors(side: ItemSide, n_known: int) -> tuple[torch.Tensor, ...]:
    """The item tower's inputs; items from n_known on have no trained ID embedding."""
    known = torch.zeros(len(side.theme), dtype=torch.bool)
    known[:n_known] = True
    return (
        torch.from_numpy(side.text), torch.from_numpy(side.theme),
        torch.from_numpy(side.price_band), known,
    )  # fmt: skip


def as_tensors(inputs: ShopperInputs) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(value) for name, value in vars(inputs).items()}


def score_all(model: TwoTower, item_vectors: torch.Tensor, inputs: ShopperInputs) -> FloatArray:
    """Scores of every item for each shopper: (B, n_items)."""
    return model.scores(item_vectors, as_tensors(inputs))[:, :-1].float().numpy()


def eval_inputs(history: HistoryIndex, users: EvalSet) -> ShopperInputs:
    s = history.snapshot
    return stack(
        [
            history.row(int(u), int(start), int(end), int(s.basket_time[target]))
            for u, start, end, target in zip(
                users.users,
                users.history_start,
                users.history_end,
                users.target_basket,
                strict=True,
            )
        ]
    )


def make_scorer(
    model: TwoTower, side: ItemSide, history: HistoryIndex
) -> Callable[[EvalSet], FloatArray]:
    model.eval()
    with torch.inference_mode():
        item_vectors = model.item_vectors(*item_tensors(side, model.config.n_items))

    def scorer(users: EvalSet) -> FloatArray:
        with torch.inference_mode():
            return score_all(model, item_vectors, eval_inputs(history, users))

    return scorer


def validation_score(
    snapshot: Snapshot, users: EvalSet, scorer: Callable[..., FloatArray]
) -> dict[str, float]:
    all_items = evaluate(snapshot, users, scorer, new_only=False)
    new_items = evaluate(snapshot, users, scorer, new_only=True)
    return {
        "ndcg@10_all": all_items.ndcg_10,
        "ndcg@10_new": new_items.ndcg_10,
        "objective": (all_items.ndcg_10 + new_items.ndcg_10) / 2,
    }


def training_examples(
    split: Split, history: HistoryIndex
) -> tuple[ShopperInputs, list[np.ndarray]]:
    """One example per training basket: the shopper's earlier baskets -> this basket's items."""
    s = split.snapshot
    rows, targets = [], []
    for basket in tqdm(split.train_baskets, desc="examples", unit="basket", leave=False):
        user = int(s.basket_user[basket])
        first = int(s.user_offsets[user])
        rows.append(history.row(user, first, int(basket), int(s.basket_time[basket])))
        targets.append(s.items_of(int(basket)))
    return stack(rows), targets


def fit_two_tower(split: Split, side: ItemSide, settings: FitSettings) -> FitResult:
    with seeded_torch(settings.seed):
        return _fit(split, side, settings)


def _fit(split: Split, side: ItemSide, settings: FitSettings) -> FitResult:
    started = time.perf_counter()
    s = split.snapshot
    spec = sequence_spec(s, settings)
    history = HistoryIndex(s, spec)
    examples, targets = training_examples(split, history)
    tensors = as_tensors(examples)
    frequency = torch.from_numpy(
        np.bincount(np.concatenate(targets), minlength=s.n_items).astype(np.float32)
    )
    frequency = frequency / frequency.sum()
    config = TwoTowerConfig(
        n_items=s.n_items, n_themes=len(side.themes), n_price_bands=len(side.price_bands),
        n_countries=len(s.countries), events_per_type=spec.events_per_type,
    )  # fmt: skip
    model = TwoTower(config)
    groups: list[dict[str, Any]] = [
        {"params": [*model.items.parameters(), *model.users.parameters()]},
        {"params": list(model.repeat.parameters()), "lr": settings.repeat_learning_rate},
    ]
    optimizer = torch.optim.AdamW(
        groups,
        lr=settings.learning_rate,
        weight_decay=settings.weight_decay,
    )
    steps_per_epoch = -(-len(targets) // settings.batch_size)
    # Cosine decay over the epoch budget: the late, small steps stop validation from swinging.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=settings.max_epochs * steps_per_epoch
    )
    item_inputs = item_tensors(side, s.n_items)
    rng = np.random.default_rng(settings.seed)
    best: FitResult | None = None
    history_log: list[dict[str, float]] = []
    epochs = tqdm(range(1, settings.max_epochs + 1), desc="two-tower", unit="epoch")
    for epoch in epochs:
        model.train()
        order = rng.permutation(len(targets))
        losses = []
        steps = tqdm(range(0, len(order), settings.batch_size), desc=f"epoch {epoch}", leave=False)
        for first in steps:
            batch = order[first : first + settings.batch_size]
            loss = _step(model, item_inputs, tensors, targets, batch, frequency, rng, settings)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        scores = validation_score(s, split.validation, make_scorer(model, side, history))
        history_log.append({"epoch": epoch, "loss": float(np.mean(losses)), **scores})
        epochs.set_postfix(loss=f"{np.mean(losses):.3f}", val=f"{scores['objective']:.4f}")
        if best is None or scores["objective"] > best.validation["objective"]:
            best = FitResult(copy.deepcopy(model), epoch, scores)
        elif epoch - best.best_epoch >= settings.patience:
            break
    assert best is not None
    best.history = history_log
    best.seconds = time.perf_counter() - started
    best.model.eval()
    return best


def _step(
    model: TwoTower,
    item_inputs: tuple[torch.Tensor, ...],
    tensors: dict[str, torch.Tensor],
    targets: list[np.ndarray],
    batch: np.ndarray,
    frequency: torch.Tensor,
    rng: np.random.Generator,
    settings: FitSettings,
) -> torch.Tensor:
    n_items = model.config.n_items
    index = torch.from_numpy(batch)
    t = {name: value[index] for name, value in tensors.items()}
    item_vectors = model.item_vectors(*item_inputs)
    batch_targets = [targets[i] for i in batch]
    drawn = np.concatenate(batch_targets)
    negatives = rng.integers(0, n_items, settings.uniform_negatives)
    candidates = torch.from_numpy(np.unique(np.concatenate([drawn, negatives])))
    positives = torch.zeros(len(batch), n_items + 1, dtype=torch.bool)
    rows = np.repeat(np.arange(len(batch)), [len(items) for items in batch_targets])
    positives[torch.from_numpy(rows), torch.from_numpy(drawn)] = True
    logits = model.scores(item_vectors, t)[:, candidates]
    log_q = inclusion_log_q(frequency, candidates, len(drawn), settings.uniform_negatives)
    in_batch = positives[:, candidates]
    all_items = sampled_softmax_loss(logits, in_batch, log_q)
    # The same task with the shopper's past items taken out, as a storefront shows "new to you"
    # lists: without it the repeats dominate the gradient and discovery is learnt poorly.
    bought = torch.zeros_like(positives).scatter_(1, t["repeat_items"], True)
    bought[:, n_items] = False
    bought = bought[:, candidates]
    new_logits = logits.masked_fill(bought, -1e4)
    new_items = sampled_softmax_loss(new_logits, in_batch & ~bought, log_q)
    return all_items + settings.new_items_weight * new_items
