"""Themes from the shop's own data: item_feature.theme_source gains 'category' (the shop's
category column), 'learned' (clusters of title embeddings) and 'none' (no theme), and loses
'fallback' (the demo shop's "Gifts" given to every item when no keyword rule matched; such items
now have no theme).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_SOURCES = "theme_source IN ('category', 'learned', 'keyword', 'neighbours', 'none')"
OLD_SOURCES = "theme_source IN ('keyword', 'neighbours', 'fallback')"


def _comments(theme: str, theme_source: str) -> None:
    op.alter_column("item", "theme", existing_type=sa.Text(), comment=theme)
    op.alter_column(
        "item_feature",
        "theme_source",
        existing_type=sa.Text(),
        existing_nullable=False,
        comment=theme_source,
    )


def upgrade() -> None:
    op.drop_constraint(op.f("ck_item_feature_theme_source"), "item_feature", type_="check")
    op.execute(
        "UPDATE item SET theme = NULL FROM item_feature f"
        " WHERE f.item_id = item.id AND f.theme_source = 'fallback'"
    )
    op.execute("UPDATE item_feature SET theme_source = 'none' WHERE theme_source = 'fallback'")
    op.create_check_constraint(op.f("ck_item_feature_theme_source"), "item_feature", NEW_SOURCES)
    _comments(
        "Readable theme (features step: RECS_THEMES); NULL: none",
        "How item.theme was chosen (none: no theme)",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_item_feature_theme_source"), "item_feature", type_="check")
    # The old schema cannot say these; they are derived rows: `python -m app features` remakes them.
    op.execute("DELETE FROM item_feature WHERE theme_source IN ('category', 'learned', 'none')")
    op.create_check_constraint(op.f("ck_item_feature_theme_source"), "item_feature", OLD_SOURCES)
    _comments("Readable theme derived from the title (features step)", "How item.theme was chosen")
