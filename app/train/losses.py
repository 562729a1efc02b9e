"""Sampled softmax with logQ correction (pure functions)."""

import torch
from torch import Tensor


def inclusion_log_q(
    item_frequency: Tensor, candidates: Tensor, positive_draws: int, uniform: int
) -> Tensor:
    """log of the probability that each candidate is in the candidate set, which holds every
    item drawn as one of `positive_draws` in-batch positives (by frequency) or as one of
    `uniform` negatives. The set has no duplicates, so this is 1 - P(never drawn), not the
    expected number of draws (which over-corrects popular items that are always present)."""
    n_items = item_frequency.shape[0]
    expected = positive_draws * item_frequency[candidates] + uniform / n_items
    return torch.log((-torch.expm1(-expected)).clamp(min=1e-12))


def sampled_softmax_loss(logits: Tensor, positives: Tensor, log_q: Tensor) -> Tensor:
    """Multi-positive sampled softmax.

    logits: (B, C) scores of each example against the C candidates; positives: (B, C) bool, the
    candidates in the example's target basket; log_q: (C,) sampling correction. Each example's
    loss is the mean negative log-probability of its positives among all candidates.
    """
    log_probs = torch.log_softmax(logits - log_q, dim=1)
    weights = positives.float()
    per_example = -(log_probs * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    has_positive = positives.any(1)
    if not has_positive.any():
        return logits.sum() * 0.0  # keeps the graph; nothing to learn from this batch
    return per_example[has_positive].mean()
