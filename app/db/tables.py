"""The schema, as SQLAlchemy Core tables. Alembic migrations in migrations/ create it."""

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)

# Deterministic constraint names, so migrations can refer to (and drop) them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

EVENT_TYPES = ("view", "click", "add_to_cart", "purchase")

item = Table(
    "item",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("sku", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False, comment="Title as the source wrote it"),
    Column("display_title", Text, nullable=False, comment="Title in readable case"),
    Column("price", Numeric(12, 2), comment="Most common unit price when first loaded"),
    Column("category", Text, comment="Category given by the source, if any"),
    Column("theme", Text, comment="Readable theme derived from the title (features step)"),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
)

app_user = Table(
    "app_user",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("external_id", Text, nullable=False, unique=True),
    Column("country", Text),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
)

interaction = Table(
    "interaction",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("event_id", Text, nullable=False, unique=True, comment="Idempotency key"),
    Column("user_id", BigInteger, ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("item_id", BigInteger, ForeignKey("item.id", ondelete="CASCADE"), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(12, 2)),
    Column("order_id", Text, comment="Order or basket id"),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "event_type IN ('view', 'click', 'add_to_cart', 'purchase')", name="event_type"
    ),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("unit_price IS NULL OR unit_price >= 0", name="unit_price_not_negative"),
    # "A user's last N items" and "an item's events over time".
    Index("ix_interaction_user_id_occurred_at", "user_id", "occurred_at"),
    Index("ix_interaction_item_id_occurred_at", "item_id", "occurred_at"),
)
