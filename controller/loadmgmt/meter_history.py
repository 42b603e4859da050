"""The building's peak from the meter's stored hourly maxima: what sizes the fail-safe when nothing else does.

Why: with neither ``[site] building_peak_kw`` nor a plan, the fail-safe was 0 A, so every car stopped when the
controller went away. The building meter's own history says how high the building has gone; its highest
hourly maximum plus a margin is a fair stand-in, but only once the history is long and complete enough to
have seen a peak: at least ``min_days`` (a week covers the weekday/weekend cycle) and readings in at least
``min_coverage`` of its hours (a meter silent for days may have missed the peak). Shorter or patchier history
is not used, and says why. Pure: the caller reads the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

#: how far back the store is read; the margin over the highest hourly maximum seen; the history a peak needs
HISTORY_DAYS = 90
MARGIN = 0.2
MIN_DAYS = 7.0
MIN_COVERAGE = 0.8


@dataclass(frozen=True)
class HistoryPeak:
    """``peak_kw``: the highest hourly maximum with the margin, None when the history does not suffice;
    ``why`` says what it rests on (or what is missing), for the log."""

    peak_kw: float | None
    seen_kw: float | None
    hours: int
    span_days: float
    why: str


def peak_from_history(
    hours: Sequence[datetime],
    max_kw: Sequence[float],
    now: datetime,
    *,
    margin: float = MARGIN,
    min_days: float = MIN_DAYS,
    min_coverage: float = MIN_COVERAGE,
) -> HistoryPeak:
    """The building peak to size a fail-safe on, from hourly maxima (``hours``: each hour's start)."""
    if len(hours) == 0:
        return HistoryPeak(None, None, 0, 0.0, "no building meter history")
    stamps = np.array([h.timestamp() for h in hours], float)
    kw = np.asarray(max_kw, float)
    span_h = (now.timestamp() - stamps.min()) / 3600.0
    distinct = int(np.unique(np.floor(stamps / 3600.0)).size)
    seen = float(max(kw.max(), 0.0))
    span_days = span_h / 24.0
    if span_days < min_days:
        why = f"building meter history spans {span_days:.1f} days, {min_days:g} needed"
        return HistoryPeak(None, seen, distinct, span_days, why)
    coverage = distinct / max(span_h, 1.0)
    if coverage < min_coverage:
        why = f"building meter history has readings in {coverage:.0%} of its hours, {min_coverage:.0%} needed"
        return HistoryPeak(None, seen, distinct, span_days, why)
    why = (f"building meter history: highest hourly maximum {seen:.1f} kW over {span_days:.1f} days "
           f"(+{margin:.0%})")  # fmt: skip
    return HistoryPeak(seen * (1.0 + margin), seen, distinct, span_days, why)
