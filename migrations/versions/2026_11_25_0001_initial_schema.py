"""Initial schema: item, app_user, interaction.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 19:49:12.056032
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("external_id", name=op.f("uq_app_user_external_id")),
    )
    op.create_table(
        "item",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False, comment="Title as the source wrote it"),
        sa.Column("display_title", sa.Text(), nullable=False, comment="Title in readable case"),
        sa.Column(
            "price",
            sa.Numeric(precision=12, scale=2),
            nullable=True,
            comment="Most common unit price when first loaded",
        ),
        sa.Column(
            "category", sa.Text(), nullable=True, comment="Category given by the source, if any"
        ),
        sa.Column(
            "theme",
            sa.Text(),
            nullable=True,
            comment="Readable theme derived from the title (features step)",
        ),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item")),
        sa.UniqueConstraint("sku", name=op.f("uq_item_sku")),
    )
    op.create_table(
        "interaction",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False, comment="Idempotency key"),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("order_id", sa.Text(), nullable=True, comment="Order or basket id"),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "event_type IN ('view', 'click', 'add_to_cart', 'purchase')",
            name=op.f("ck_interaction_event_type"),
        ),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_interaction_quantity_positive")),
        sa.CheckConstraint(
            "unit_price IS NULL OR unit_price >= 0",
            name=op.f("ck_interaction_unit_price_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_interaction_item_id_item"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_interaction_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interaction")),
        sa.UniqueConstraint("event_id", name=op.f("uq_interaction_event_id")),
    )
    op.create_index(
        "ix_interaction_item_id_occurred_at",
        "interaction",
        ["item_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_interaction_user_id_occurred_at",
        "interaction",
        ["user_id", "occurred_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_interaction_user_id_occurred_at", table_name="interaction")
    op.drop_index("ix_interaction_item_id_occurred_at", table_name="interaction")
    op.drop_table("interaction")
    op.drop_table("item")
    op.drop_table("app_user")
