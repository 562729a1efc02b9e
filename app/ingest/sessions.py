"""Baskets of purchases that came without an order id: sessions of one shopper.

Purchases of one shopper without an order id form one basket while consecutive ones are less
than the session gap apart (RECS_SESSION_GAP_MIN). The basket is stored in interaction.order_id
as `session:<shopper's external id>:<unix time of its first purchase>`, so every reader groups
baskets by order_id alone. The prefix is reserved: an order id a file or a client gives may not
start with it. Sessions are recomputed for every shopper a write touches, over all of that
shopper's purchases without a real order id, so a late or out-of-order purchase that joins or
splits sessions relabels them.
"""

from collections.abc import Collection
from typing import Any

import psycopg

SESSION_PREFIX = "session:"

# psycopg's parameter style; the service runs it through SQLAlchemy's exec_driver_sql on the
# same driver. `%%` is a literal `%` there. Only rows whose session changes are written.
SESSIONS_SQL = """
WITH purchase AS (
    SELECT i.id, i.user_id, i.occurred_at,
           i.occurred_at - lag(i.occurred_at) OVER by_time AS since_previous
    FROM interaction i
    WHERE i.user_id = ANY(%(user_ids)s) AND i.event_type = 'purchase'
      AND (i.order_id IS NULL OR i.order_id LIKE 'session:%%')
    WINDOW by_time AS (PARTITION BY i.user_id ORDER BY i.occurred_at, i.id)
), numbered AS (
    SELECT id, user_id, occurred_at,
           count(*) FILTER (
               WHERE since_previous IS NULL OR since_previous >= make_interval(mins => %(gap_min)s)
           ) OVER (PARTITION BY user_id ORDER BY occurred_at, id) AS session
    FROM purchase
), derived AS (
    SELECT n.id,
           'session:' || u.external_id || ':'
               || floor(extract(epoch FROM min(n.occurred_at) OVER (
                      PARTITION BY n.user_id, n.session)))::bigint AS order_id
    FROM numbered n
    JOIN app_user u ON u.id = n.user_id
)
UPDATE interaction SET order_id = d.order_id
FROM derived d
WHERE interaction.id = d.id AND interaction.order_id IS DISTINCT FROM d.order_id
"""

# Shoppers with a purchase not yet in a basket (new, or stored before sessions were derived).
UNSESSIONED_SQL = """
SELECT DISTINCT user_id FROM interaction WHERE event_type = 'purchase' AND order_id IS NULL
"""


def is_session(order_id: str | None) -> bool:
    """Whether a stored order id is a derived session rather than one the shop gave."""
    return order_id is not None and order_id.startswith(SESSION_PREFIX)


def session_parameters(user_ids: Collection[int], gap_min: int) -> dict[str, object]:
    return {"user_ids": list(user_ids), "gap_min": gap_min}


def derive_sessions(cur: psycopg.Cursor[Any], gap_min: int, user_ids: Collection[int]) -> int:
    """Recompute the sessions of `user_ids` and of every shopper with a purchase not yet in one,
    in the caller's transaction; returns how many purchases got a new basket id."""
    shoppers = set(user_ids) | {user_id for (user_id,) in cur.execute(UNSESSIONED_SQL)}
    if not shoppers:
        return 0
    cur.execute(SESSIONS_SQL, session_parameters(sorted(shoppers), gap_min))
    return cur.rowcount
