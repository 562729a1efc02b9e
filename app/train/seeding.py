"""Seeded, deterministic torch for a training run, leaving the process as it found it."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch and turn on deterministic algorithms; the global switches are restored after,
    so a training run inside a long-lived process (tests, the service) changes nothing else."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode fills every new tensor with NaN by default, a third of a CPU step;
    # nothing here reads memory it has not written.
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.utils.deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]
