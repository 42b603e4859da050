"""Store queries only the API needs (filters, newest-first pages, forgetting a charger).

Why here and not in ``controller.store.Store``: they serve one reader and keep the store's own surface (used
by the hot OCPP path) small. Every function is synchronous; the API runs them in a worker thread.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from controller.store import ChargePointRow, ConnectorRow, EventRow, Store, TransactionRow


def transactions(
    store: Store,
    *,
    cp_id: str | None = None,
    id_tag: str | None = None,
    open_only: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[TransactionRow]:
    """Transactions newest first; ``since``/``until`` bound the start time (stop time for unknown starts)."""
    with store.session() as s:
        q = select(TransactionRow).order_by(TransactionRow.id.desc()).limit(limit)
        if cp_id is not None:
            q = q.where(TransactionRow.cp_id == cp_id)
        if id_tag is not None:
            q = q.where(TransactionRow.id_tag == id_tag)
        if open_only is True:
            q = q.where(TransactionRow.stop_time.is_(None))
        elif open_only is False:
            q = q.where(TransactionRow.stop_time.is_not(None))
        started = TransactionRow.start_time
        if since is not None:
            q = q.where((started >= since) | (started.is_(None) & (TransactionRow.stop_time >= since)))
        if until is not None:
            q = q.where((started < until) | (started.is_(None) & (TransactionRow.stop_time < until)))
        return list(s.scalars(q))


def latest_events(
    store: Store, *, cp_id: str | None = None, kind: str | None = None, limit: int = 100
) -> list[EventRow]:
    """The newest ``limit`` events, newest first."""
    with store.session() as s:
        q = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
        if cp_id is not None:
            q = q.where(EventRow.cp_id == cp_id)
        if kind is not None:
            q = q.where(EventRow.kind == kind)
        return list(s.scalars(q))


def forget_charge_point(store: Store, cp_id: str) -> bool:
    """Delete a charge point and its connector rows; its transactions and meter values stay for billing.

    Returns False when it was not in the store.
    """
    with store.session() as s:
        if s.get(ChargePointRow, cp_id) is None:
            return False
        s.execute(delete(ConnectorRow).where(ConnectorRow.cp_id == cp_id))
        s.execute(delete(ChargePointRow).where(ChargePointRow.id == cp_id))
        return True


def store_is_up(store: Store) -> bool:
    """One trivial query: can the store answer at all?"""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False
