"""The schema, as SQLAlchemy Core tables. Alembic migrations in migrations/ create it."""

from sqlalchemy import (
    ARRAY,
    REAL,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
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
    Column("theme", Text, comment="Readable theme (features step: RECS_THEMES); NULL: none"),
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
    Column(
        "order_id",
        Text,
        comment="Order or basket id; for purchases without one, the derived session"
        " 'session:<user external id>:<unix time of its first purchase>'",
    ),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    CheckConstraint(
        "event_type IN ('view', 'click', 'add_to_cart', 'purchase')", name="event_type"
    ),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("unit_price IS NULL OR unit_price >= 0", name="unit_price_not_negative"),
    # "A user's last N items" and "an item's events over time".
    Index("ix_interaction_user_id_occurred_at", "user_id", "occurred_at"),
    # A shopper's purchases or cart newest first, read from the index alone (serving).
    Index(
        "ix_interaction_user_id_event_type_occurred_at",
        "user_id",
        "event_type",
        "occurred_at",
        "id",
        postgresql_include=["item_id", "order_id"],
    ),
    Index("ix_interaction_item_id_occurred_at", "item_id", "occurred_at"),
)

# Derived features (`python -m app features`, app/features/): recomputed from `interaction`
# and `item` as a whole, in one transaction. Only purchase events count.

item_feature = Table(
    "item_feature",
    metadata,
    Column("item_id", BigInteger, ForeignKey("item.id", ondelete="CASCADE"), primary_key=True),
    Column("price_band", SmallInteger, comment="0..4: price quintile among items; NULL: no price"),
    Column("typical_price", Numeric(12, 2), comment="Median unit price paid, else item.price"),
    Column("purchases", Integer, nullable=False, comment="Baskets that hold the item"),
    Column("buyers", Integer, nullable=False, comment="Distinct shoppers who bought it"),
    Column("quantity", BigInteger, nullable=False, comment="Units sold"),
    Column("repeat_buyer_share", Double, comment="Share of buyers who bought it in 2+ baskets"),
    Column(
        "theme_source", Text, nullable=False, comment="How item.theme was chosen (none: no theme)"
    ),
    CheckConstraint("price_band BETWEEN 0 AND 4", name="price_band_range"),
    CheckConstraint(
        "theme_source IN ('category', 'learned', 'keyword', 'neighbours', 'none')",
        name="theme_source",
    ),
)

item_embedding = Table(
    "item_embedding",
    metadata,
    Column("item_id", BigInteger, ForeignKey("item.id", ondelete="CASCADE"), primary_key=True),
    Column("model", Text, nullable=False, comment="Sentence-embedding model"),
    Column("title", Text, nullable=False, comment="The text embedded: the display title"),
    Column("vector", ARRAY(REAL), nullable=False, comment="Unit-length embedding"),
)

item_pair = Table(
    "item_pair",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("item_id", BigInteger, ForeignKey("item.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "other_item_id", BigInteger, ForeignKey("item.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("baskets", Integer, nullable=False, comment="Baskets with the pair (support count)"),
    Column("support", Double, nullable=False, comment="baskets / all baskets"),
    Column("confidence", Double, nullable=False, comment="P(other | item)"),
    Column("lift", Double, nullable=False, comment="confidence / P(other)"),
    CheckConstraint("kind IN ('basket', 'shopper_30d')", name="kind"),
    CheckConstraint("item_id <> other_item_id", name="distinct_items"),
    # "The top pairs of an item by lift" (a backward scan serves ORDER BY lift DESC).
    Index("ix_item_pair_kind_item_id_lift", "kind", "item_id", "lift"),
)

# item_popularity's country for the ranking over every shopper (with or without a country).
ALL_SHOPPERS = "*"

item_popularity = Table(
    "item_popularity",
    metadata,
    Column("country", Text, primary_key=True, comment="The shoppers' country"),
    Column("month", Date, primary_key=True, comment="First day of the month (UTC)"),
    Column("item_id", BigInteger, ForeignKey("item.id", ondelete="CASCADE"), primary_key=True),
    Column("purchases", Integer, nullable=False, comment="Baskets that hold the item"),
    Column("buyers", Integer, nullable=False, comment="Distinct shoppers who bought it"),
    Column("quantity", BigInteger, nullable=False, comment="Units sold"),
    Column("rank", Integer, nullable=False, comment="1 = most buyers in that country and month"),
    # "The most popular items in a country and month".
    Index("ix_item_popularity_country_month_rank", "country", "month", "rank"),
)

user_feature = Table(
    "user_feature",
    metadata,
    Column("user_id", BigInteger, ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("baskets", Integer, nullable=False),
    Column("usual_unit_price", Numeric(12, 2), comment="Median unit price paid"),
    Column("mean_basket_value", Numeric(12, 2), comment="Mean of quantity x unit price per basket"),
    Column("first_purchase_at", DateTime(timezone=True), nullable=False),
    Column("last_purchase_at", DateTime(timezone=True), nullable=False),
    Column("mean_days_between_baskets", Double, comment="NULL with a single basket"),
)

user_item_feature = Table(
    "user_item_feature",
    metadata,
    Column("user_id", BigInteger, ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", BigInteger, ForeignKey("item.id", ondelete="CASCADE"), primary_key=True),
    Column("baskets", Integer, nullable=False, comment="The shopper's baskets that hold it"),
    Column("quantity", BigInteger, nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
    Column("median_repurchase_gap_days", Double, comment="NULL when bought in one basket"),
)

api_key = Table(
    "api_key",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("key_hash", Text, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
