"""Feature tables: item_feature, item_embedding, item_pair, item_popularity, user_feature,
user_item_feature (filled by `python -m app features`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:20:44.064073
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_embedding",
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False, comment="Sentence-embedding model"),
        sa.Column(
            "title", sa.Text(), nullable=False, comment="The text embedded: the display title"
        ),
        sa.Column("vector", sa.ARRAY(sa.REAL()), nullable=False, comment="Unit-length embedding"),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
            name=op.f("fk_item_embedding_item_id_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_item_embedding")),
    )
    op.create_table(
        "item_feature",
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "price_band",
            sa.SmallInteger(),
            nullable=True,
            comment="0..4: price quintile among items; NULL: no price",
        ),
        sa.Column(
            "typical_price",
            sa.Numeric(precision=12, scale=2),
            nullable=True,
            comment="Median unit price paid, else item.price",
        ),
        sa.Column("purchases", sa.Integer(), nullable=False, comment="Baskets that hold the item"),
        sa.Column(
            "buyers", sa.Integer(), nullable=False, comment="Distinct shoppers who bought it"
        ),
        sa.Column("quantity", sa.BigInteger(), nullable=False, comment="Units sold"),
        sa.Column(
            "repeat_buyer_share",
            sa.Double(),
            nullable=True,
            comment="Share of buyers who bought it in 2+ baskets",
        ),
        sa.Column("theme_source", sa.Text(), nullable=False, comment="How item.theme was chosen"),
        sa.CheckConstraint(
            "theme_source IN ('keyword', 'neighbours', 'fallback')",
            name=op.f("ck_item_feature_theme_source"),
        ),
        sa.CheckConstraint(
            "price_band BETWEEN 0 AND 4", name=op.f("ck_item_feature_price_band_range")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_item_feature_item_id_item"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_item_feature")),
    )
    op.create_table(
        "item_pair",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("other_item_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "baskets", sa.Integer(), nullable=False, comment="Baskets with the pair (support count)"
        ),
        sa.Column("support", sa.Double(), nullable=False, comment="baskets / all baskets"),
        sa.Column("confidence", sa.Double(), nullable=False, comment="P(other | item)"),
        sa.Column("lift", sa.Double(), nullable=False, comment="confidence / P(other)"),
        sa.CheckConstraint("kind IN ('basket', 'shopper_30d')", name=op.f("ck_item_pair_kind")),
        sa.CheckConstraint("item_id <> other_item_id", name=op.f("ck_item_pair_distinct_items")),
        sa.ForeignKeyConstraint(
            ["item_id"], ["item.id"], name=op.f("fk_item_pair_item_id_item"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["other_item_id"],
            ["item.id"],
            name=op.f("fk_item_pair_other_item_id_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "item_id", "other_item_id", name=op.f("pk_item_pair")),
    )
    op.create_index(
        "ix_item_pair_kind_item_id_lift", "item_pair", ["kind", "item_id", "lift"], unique=False
    )
    op.create_table(
        "item_popularity",
        sa.Column("country", sa.Text(), nullable=False, comment="The shoppers' country"),
        sa.Column("month", sa.Date(), nullable=False, comment="First day of the month (UTC)"),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("purchases", sa.Integer(), nullable=False, comment="Baskets that hold the item"),
        sa.Column(
            "buyers", sa.Integer(), nullable=False, comment="Distinct shoppers who bought it"
        ),
        sa.Column("quantity", sa.BigInteger(), nullable=False, comment="Units sold"),
        sa.Column(
            "rank",
            sa.Integer(),
            nullable=False,
            comment="1 = most buyers in that country and month",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
            name=op.f("fk_item_popularity_item_id_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("country", "month", "item_id", name=op.f("pk_item_popularity")),
    )
    op.create_index(
        "ix_item_popularity_country_month_rank",
        "item_popularity",
        ["country", "month", "rank"],
        unique=False,
    )
    op.create_table(
        "user_feature",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("baskets", sa.Integer(), nullable=False),
        sa.Column(
            "usual_unit_price",
            sa.Numeric(precision=12, scale=2),
            nullable=True,
            comment="Median unit price paid",
        ),
        sa.Column(
            "mean_basket_value",
            sa.Numeric(precision=12, scale=2),
            nullable=True,
            comment="Mean of quantity x unit price per basket",
        ),
        sa.Column("first_purchase_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "mean_days_between_baskets",
            sa.Double(),
            nullable=True,
            comment="NULL with a single basket",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_user_feature_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_feature")),
    )
    op.create_table(
        "user_item_feature",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "baskets", sa.Integer(), nullable=False, comment="The shopper's baskets that hold it"
        ),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "median_repurchase_gap_days",
            sa.Double(),
            nullable=True,
            comment="NULL when bought in one basket",
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
            name=op.f("fk_user_item_feature_item_id_item"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["app_user.id"],
            name=op.f("fk_user_item_feature_user_id_app_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "item_id", name=op.f("pk_user_item_feature")),
    )


def downgrade() -> None:
    op.drop_table("user_item_feature")
    op.drop_table("user_feature")
    op.drop_index("ix_item_popularity_country_month_rank", table_name="item_popularity")
    op.drop_table("item_popularity")
    op.drop_index("ix_item_pair_kind_item_id_lift", table_name="item_pair")
    op.drop_table("item_pair")
    op.drop_table("item_feature")
    op.drop_table("item_embedding")
