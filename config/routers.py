"""Database routing: the Excel export jobs read from a PostgreSQL read replica, if there is one.

A city committee's ranking and ledger workbooks read every period row of tens of thousands of
members. With ``DATABASE_REPLICA_URL`` set (config/settings.py adds the ``"replica"`` alias),
the export job (``scoring.exports._write_job``) reads those rows from a streaming replica
inside ``reading_from_replica()``, so the primary keeps serving the pages and the recomputes.

Everything else — every write, and every read outside that block — goes to ``default``, the
primary. A streaming replica may be a few seconds behind the primary (replication lag): fine for
a workbook that says when it was generated, not for a page that must show the change just made,
nor for the job's own row (claimed and updated on the primary, never read from the replica).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

REPLICA = "replica"

# A ContextVar, not a global or a thread-local: each thread and each asyncio task has its own
# value, so one job reading from the replica never sends another request's reads there.
_reading_from_replica: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


@contextmanager
def reading_from_replica() -> Iterator[None]:
    """Within the block, reads go to the replica when one is configured (writes never do).
    The previous value is restored on leaving, also when the block raises."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


class ReplicaRouter:
    """``DATABASE_ROUTERS`` entry: the replica for reads inside ``reading_from_replica()``,
    the primary for everything else. ``None`` means "no opinion": Django then uses the
    default database (or, for a related object, the database its instance came from)."""

    def db_for_read(self, model, **hints) -> str | None:
        # Lag is acceptable only where the caller said so, and only if the replica exists
        # (a laptop or a one-machine install has just the primary).
        if _reading_from_replica.get() and replica_configured():
            return REPLICA
        return None

    def db_for_write(self, model, **hints) -> str | None:
        # The replica is read-only (a hot standby refuses writes): writes go to the primary.
        return None

    def allow_relation(self, obj1, obj2, **hints) -> bool | None:
        # The replica holds the same rows as the primary, so an object read from one may
        # refer to an object read from the other.
        if {obj1._state.db, obj2._state.db} <= {DEFAULT_DB_ALIAS, REPLICA}:
            return True
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool | None:
        # The replica is a copy of the primary: migrations reach it through replication.
        if db == REPLICA:
            return False
        return None
