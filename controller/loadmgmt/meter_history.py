"""The building meter's history in the store: 15-minute averages, for the daily re-plan.

Why 15-minute buckets and not every reading: a meter reports every few seconds (millions of rows a year),
while the plan needs hourly loads and NEC 220.87 speaks of 15-minute demand. One row per meter per quarter
hour is 35,000 rows a year, whatever the meter's rate.

Why the event log (``events``, kind ``building_load``) rather than a table of its own: it already has a
time index and is pruned by ``[store] retention_days`` (``controller.store.retention``), so the history is
bounded with no schema migration. Each row's ``data`` is ``{"meter_id", "mean_kw", "max_kw", "n",
"bucket_s"}`` at ``at`` = the bucket's start (UTC); the load is the building's own (with ``[site]
meter_includes_evs`` the chargers' share is subtracted before it is recorded).

A reading older than the bucket being filled (late delivery) is written as a bucket row of its own; the
reader averages every row of a bucket weighted by its reading count, so nothing is lost or counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from controller.store.models import EventRow
from controller.store.store import Store

KIND = "building_load"
BUCKET_S = 900


def bucket_start(ts: datetime) -> datetime:
    """The start of the 15-minute bucket holding ``ts`` (UTC)."""
    t = ts.astimezone(UTC)
    return t - timedelta(seconds=(t.minute * 60 + t.second) % BUCKET_S, microseconds=t.microsecond)


@dataclass
class _Bucket:
    start: datetime
    total_kw: float = 0.0
    max_kw: float = float("-inf")
    n: int = 0

    def add(self, kw: float) -> None:
        self.total_kw += kw
        self.max_kw = max(self.max_kw, kw)
        self.n += 1

    def row(self, meter_id: str) -> dict[str, Any]:
        data = {"meter_id": meter_id, "mean_kw": round(self.total_kw / self.n, 4), "max_kw": round(self.max_kw, 4),
                "n": self.n, "bucket_s": BUCKET_S}  # fmt: skip
        return {"at": self.start, "cp_id": None, "kind": KIND, "data": data}


class LoadBuckets:
    """Readings in, finished bucket rows out (``add``); ``flush`` hands over the bucket being filled."""

    def __init__(self) -> None:
        self._open: dict[str, _Bucket] = {}

    def add(self, meter_id: str, ts: datetime, kw: float) -> list[dict[str, Any]]:
        start = bucket_start(ts)
        current = self._open.get(meter_id)
        if current is None or start > current.start:
            self._open[meter_id] = _Bucket(start)
            self._open[meter_id].add(kw)
            return [current.row(meter_id)] if current is not None else []
        if start == current.start:
            current.add(kw)
            return []
        late = _Bucket(start)
        late.add(kw)
        return [late.row(meter_id)]

    def flush(self) -> list[dict[str, Any]]:
        rows = [b.row(m) for m, b in self._open.items()]
        self._open.clear()
        return rows


#: The history query per dialect (and its driver's parameter style).
_HISTORY_SQL = {
    "sqlite": "SELECT at, json_extract(data, '$.mean_kw'), json_extract(data, '$.n') FROM events WHERE kind = ?",
    "postgresql": "SELECT at, (data->>'mean_kw')::float8, (data->>'n')::int FROM events WHERE kind = %s",
}
#: Rows turned into arrays at a time (see ``read_history``).
_SLICE = 500


def read_history(store: Store) -> pd.Series:
    """Mean building kW per 15-minute bucket (UTC index, sorted), every meter row of a bucket weighted by count.

    Blocking (a store read): call it off the event loop. Why the driver's cursor, read in slices that become
    numpy arrays at once: a year is 35,000 rows, and holding them as row objects (SQLAlchemy's, or even the
    driver's tuples) set off a full garbage collection that froze every thread, the event loop included, for
    100-270 ms (``benchmarks/replan_bench.py``); small slices freed as they are converted never do.
    """
    times: list[np.ndarray] = []  # ns since the epoch, UTC
    kws: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    conn = store.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute(_HISTORY_SQL[store.engine.dialect.name], (KIND,))
        while part := cur.fetchmany(_SLICE):
            at, kw, n = zip(*part, strict=True)
            # SQLite returns the stored naive-UTC text, PostgreSQL aware datetimes: both read as UTC.
            times.append(pd.to_datetime(list(at), utc=True, format="mixed").tz_convert(None).as_unit("ns").asi8)
            kws.append(np.asarray(kw, float))
            counts.append(np.asarray(n, float))
            del part, at, kw, n
        cur.close()
    finally:
        conn.close()
    if not times:
        return pd.Series(dtype=float, index=pd.DatetimeIndex([], tz=UTC))
    n_all = np.concatenate(counts)
    frame = pd.DataFrame({"at": pd.to_datetime(np.concatenate(times), unit="ns", utc=True), "n": n_all,
                          "kwn": np.concatenate(kws) * n_all})  # fmt: skip
    g = frame.groupby("at")[["kwn", "n"]].sum()
    return (g["kwn"] / g["n"]).sort_index().rename("kw")


def peak_summary(store: Store, since: datetime) -> tuple[datetime | None, float | None, int]:
    """The first bucket, the highest reading and how many buckets hold readings, from ``since`` on: what
    sizing a fail-safe on the history needs (``history_peak``), in one aggregate query (no rows to the loop)."""
    highest = EventRow.data["max_kw"].as_float()
    q = select(func.min(EventRow.at), func.max(highest), func.count(func.distinct(EventRow.at))).where(
        EventRow.kind == KIND, EventRow.at >= since
    )
    with store.session() as s:
        first, top, buckets = s.execute(q).one()
    return first, None if top is None else float(top), int(buckets or 0)
