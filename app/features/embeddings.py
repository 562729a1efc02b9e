"""MiniLM title vectors of every item, kept in `item_embedding` so that training and serving
read them instead of running the model. A stored vector is reused while its model and title are
unchanged; only new or retitled items are embedded again."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import psycopg

from app.text_embedding import DIMENSION, embed_titles

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

DROP_STALE = """
DELETE FROM item_embedding e USING item i
WHERE e.item_id = i.id AND (e.model <> %s OR e.title <> i.display_title)
"""


def item_title_vectors(
    conn: psycopg.Connection,
    item_ids: list[int],
    titles: list[str],
    progress: Callable[[str], None] | None = None,
) -> tuple[npt.NDArray[np.float32], int]:
    """Unit vectors of `titles` (the display titles of `item_ids`), in that order, after storing
    the missing ones. Returns the vectors and how many titles were embedded now."""
    conn.execute(DROP_STALE, (MODEL,))
    stored: dict[int, list[float]] = dict(
        conn.cursor(binary=True).execute("SELECT item_id, vector FROM item_embedding").fetchall()
    )
    vectors = np.zeros((len(item_ids), DIMENSION), dtype=np.float32)
    missing: list[int] = []
    for row, item_id in enumerate(item_ids):
        vector = stored.get(item_id)
        if vector is None:
            missing.append(row)
        else:
            vectors[row] = vector
    if missing:
        if progress:
            progress(f"embedding {len(missing):,} titles with MiniLM")
        vectors[missing] = embed_titles([titles[row] for row in missing])
        copy_sql = "COPY item_embedding (item_id, model, title, vector) FROM STDIN (FORMAT BINARY)"
        with conn.cursor().copy(copy_sql) as copy:
            copy.set_types(["int8", "text", "text", "float4[]"])
            for row in missing:
                copy.write_row((item_ids[row], MODEL, titles[row], vectors[row].tolist()))
    return vectors, len(missing)
