"""Retention: prune meter values, the event log, and the id tags of closed transactions past a configured age.

Why: meter values and events grow without bound (a busy site writes millions of rows a month), and the id
tag of a finished charging session identifies a driver: personal data that must not be kept forever
(``[store] retention_days``, 400 by default, 0 keeps everything). Transactions themselves stay (energy and
billing history) with their tags blanked.

Why in batches: a single ``DELETE`` of a year of rows would hold the store's write lock for seconds and stall
the write-behind queue behind it. Each step deletes at most ``batch`` rows per table in its own short
transaction on the writer thread, and the event loop runs between steps.

Meter values are walked by id (arrival order) rather than by their charger-given timestamp, which has no
index of its own: the walk stops at the first batch holding no row older than the cut-off, so a charger that
once sent a timestamp from 1970 does not force a full-table scan at every run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from controller.store.models import EventRow, MeterValueRow, TransactionRow
from controller.store.store import Store
from controller.store.writer import DbWriter


@dataclass
class _Cursor:
    """Where the meter-value walk is (the last id looked at) and whether it has passed the old rows."""

    after_id: int = 0
    done: bool = False


def prune_meter_values(store: Store, cutoff: datetime, cursor: _Cursor, batch: int) -> int:
    """Delete old rows among the next ``batch`` meter values by id; returns how many were deleted."""
    with store.session() as s:
        rows = s.execute(
            select(MeterValueRow.id, MeterValueRow.timestamp)
            .where(MeterValueRow.id > cursor.after_id)
            .order_by(MeterValueRow.id)
            .limit(batch)
        ).all()
        if not rows:
            cursor.done = True
            return 0
        cursor.after_id = rows[-1][0]
        old = [i for i, ts in rows if ts < cutoff]
        if not old:
            cursor.done = True
            return 0
        s.execute(delete(MeterValueRow).where(MeterValueRow.id.in_(old)))
        return len(old)


def prune_events(store: Store, cutoff: datetime, batch: int) -> int:
    with store.session() as s:
        ids = list(s.scalars(select(EventRow.id).where(EventRow.at < cutoff).order_by(EventRow.id).limit(batch)))
        if ids:
            s.execute(delete(EventRow).where(EventRow.id.in_(ids)))
        return len(ids)


def blank_closed_id_tags(store: Store, cutoff: datetime, batch: int) -> int:
    """Forget who charged in transactions that ended before ``cutoff`` (the energy and times stay)."""
    with store.session() as s:
        ids = list(
            s.scalars(
                select(TransactionRow.id)
                .where(
                    TransactionRow.stop_time < cutoff,
                    (TransactionRow.id_tag.is_not(None)) | (TransactionRow.stop_id_tag.is_not(None)),
                )
                .limit(batch)
            )
        )
        if ids:
            s.execute(update(TransactionRow).where(TransactionRow.id.in_(ids)).values(id_tag=None, stop_id_tag=None))
        return len(ids)


async def prune(writer: DbWriter, store: Store, cutoff: datetime, batch: int = 5000) -> dict[str, int]:
    """Prune everything older than ``cutoff``, one small transaction at a time on the writer thread."""
    totals = {"meter_values": 0, "events": 0, "id_tags_blanked": 0}
    cursor = _Cursor()
    while True:
        n_mv = 0 if cursor.done else await writer.run(prune_meter_values, store, cutoff, cursor, batch)
        n_ev = await writer.run(prune_events, store, cutoff, batch)
        n_tx = await writer.run(blank_closed_id_tags, store, cutoff, batch)
        totals["meter_values"] += n_mv
        totals["events"] += n_ev
        totals["id_tags_blanked"] += n_tx
        if cursor.done and n_ev < batch and n_tx < batch:
            return totals
        await asyncio.sleep(0)  # let the read loops run between batches
