"""The building's peak from the meter history: what sizes the fail-safe when nothing else does (pure).

Why: with neither ``[site] building_peak_kw`` nor a plan, the fail-safe was 0 A, so every car stopped when the
controller went away. The building meter's stored history (``meter_history``: 15-minute rows with each
bucket's highest reading) says how high the building has gone; that highest reading plus a margin is a fair
stand-in, but only once the history is long and complete enough to have seen a peak: at least ``min_days`` (a
week covers the weekday/weekend cycle) and readings in at least ``min_coverage`` of its buckets (a meter silent
for days may have missed the peak). Shorter or patchier history is not used, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: how far back the history is read; the margin over the highest reading seen; the history a peak needs
HISTORY_DAYS = 90
MARGIN = 0.2
MIN_DAYS = 7.0
MIN_COVERAGE = 0.8


@dataclass(frozen=True)
class HistoryPeak:
    """``peak_kw``: the highest reading with the margin, None when the history does not suffice; ``why`` says
    what it rests on (or what is missing), for the log."""

    peak_kw: float | None
    seen_kw: float | None
    span_days: float
    why: str


def peak_from_history(
    first: datetime | None,
    seen_kw: float | None,
    buckets: int,
    now: datetime,
    *,
    bucket_s: float = 900.0,
    margin: float = MARGIN,
    min_days: float = MIN_DAYS,
    min_coverage: float = MIN_COVERAGE,
) -> HistoryPeak:
    """The building peak to size a fail-safe on, from the history's first bucket (``first``), its highest
    reading (``seen_kw``) and how many ``bucket_s`` buckets hold readings (``buckets``)."""
    if first is None or seen_kw is None or buckets <= 0:
        return HistoryPeak(None, None, 0.0, "no building meter history")
    seen = max(seen_kw, 0.0)
    span_s = max((now - first).total_seconds(), bucket_s)
    span_days = span_s / 86400.0
    if span_days < min_days:
        why = f"building meter history spans {span_days:.1f} days, {min_days:g} needed"
        return HistoryPeak(None, seen, span_days, why)
    coverage = min(buckets * bucket_s / span_s, 1.0)
    if coverage < min_coverage:
        why = f"building meter history has readings in {coverage:.0%} of its time, {min_coverage:.0%} needed"
        return HistoryPeak(None, seen, span_days, why)
    why = f"building meter history: highest reading {seen:.1f} kW over {span_days:.1f} days (+{margin:.0%})"
    return HistoryPeak(seen * (1.0 + margin), seen, span_days, why)
