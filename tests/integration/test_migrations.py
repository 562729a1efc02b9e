"""The Alembic migrations build the schema, and undo it, on a real Postgres."""

import psycopg

from app.db.engine import drop_database, ensure_database, libpq_url
from app.db.migrate import downgrade, upgrade
from tests.conftest import new_database_url


def schema(url: str) -> dict[str, set[str]]:
    with psycopg.connect(libpq_url(url)) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
        ).fetchall()
    return {
        "tables": {name for (name,) in tables},
        "indexes": {name for (name,) in indexes},
        "constraints": {name for (name,) in constraints},
    }


def test_upgrade_downgrade_upgrade() -> None:
    url = new_database_url("migrations")
    assert ensure_database(url) is True
    assert ensure_database(url) is False
    try:
        upgrade(url)
        built = schema(url)
        assert {"item", "app_user", "interaction", "alembic_version"} <= built["tables"]
        assert {
            "ix_interaction_user_id_occurred_at",
            "ix_interaction_item_id_occurred_at",
            "ix_interaction_user_id_event_type_occurred_at",
            "uq_item_sku",
            "uq_app_user_external_id",
            "uq_interaction_event_id",
        } <= built["indexes"]
        assert {
            "pk_interaction",
            "fk_interaction_user_id_app_user",
            "fk_interaction_item_id_item",
            "ck_interaction_event_type",
        } <= built["constraints"]

        downgrade(url, "base")
        assert schema(url)["tables"] == {"alembic_version"}

        upgrade(url)
        assert schema(url) == built
    finally:
        drop_database(url)
