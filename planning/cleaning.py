"""Explicit, counted cleaning of a meter series.

Why explicit: the NEC 220.87 figure is a *maximum*, so one spike or one zeroed outage changes how many
chargers a building may take. Every repair is therefore a rule with a counter in ``CleaningReport``; nothing
is dropped without being counted.

Order (each step sees the previous one's output):

1. unparseable values ('?', blanks) -> missing; timestamps that could not be placed (NaT) -> dropped, counted;
2. duplicate timestamps -> averaged (the daylight-saving repeat hour is counted separately);
3. regular grid at the file's own interval: absent slots are inserted as missing (DST gaps counted apart);
4. runs of exact zeros of at least ``zero_run_min_h`` in a building whose typical load is positive -> outage,
   set missing (upstream exports such as the Cambridge archive write 0 for "no reading");
5. outliers by a robust (Hampel-type) rule: residual from a centred rolling median, flagged when it exceeds
   ``outlier_k`` robust standard deviations of the residuals around it (1.4826 x their one-day rolling median,
   floored at the whole series' value and at 5% of the median load), and only when the reading also lies
   outside the building's range fences (Q1/Q3 -/+ ``outlier_k`` x IQR). Both scale with each building; the
   fences keep real peaks (the NEC maximum) from ever being cleaned away;
6. missing runs up to ``max_fill_h`` are linearly interpolated; longer runs stay missing and the daily
   profile step drops (and counts) the days they touch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from planning.errors import PlanningError
from planning.meter import dst_dates


@dataclass
class CleaningReport:
    """What cleaning changed, by rule. All counts are in samples at the series' own interval."""

    interval_min: float = 0.0
    n_input: int = 0
    unplaced_timestamps: int = 0
    missing_values: int = 0
    duplicates: int = 0
    dst_duplicates: int = 0
    gaps_inserted: int = 0
    dst_gaps: int = 0
    zero_run_values: int = 0
    zero_runs: int = 0
    outliers: int = 0
    interpolated: int = 0
    left_missing: int = 0
    days_dropped: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the True runs in ``mask`` (vectorised)."""
    m = np.concatenate(([False], mask, [False])).astype(np.int8)
    d = np.diff(m)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def _run_mask(mask: np.ndarray, min_len: int) -> tuple[np.ndarray, int]:
    """Mask of the True runs of at least ``min_len`` samples, and how many such runs there are."""
    starts, lengths = _runs(mask)
    keep = lengths >= min_len
    out = np.zeros(mask.size, dtype=bool)
    if keep.any():
        # Mark run starts/ends with +1/-1 and cumsum: no Python loop over runs.
        marks = np.zeros(mask.size + 1, dtype=np.int32)
        np.add.at(marks, starts[keep], 1)
        np.add.at(marks, starts[keep] + lengths[keep], -1)
        out = np.cumsum(marks[:-1]) > 0
    return out, int(keep.sum())


def clean_series(
    kw: pd.Series,
    *,
    site_tz: str | None = None,
    zero_run_min_h: float = 1.0,
    outlier_k: float = 10.0,
    max_fill_h: float = 3.0,
    name: str = "meter",
) -> tuple[pd.Series, CleaningReport]:
    """Clean one kW series (naive local index). Returns the regular-grid series (NaN = still missing)."""
    rep = CleaningReport(n_input=int(kw.size))
    s = kw.astype(float)
    placed = s.index.notna()
    rep.unplaced_timestamps = int((~placed).sum())
    s = s[placed]
    if s.empty:
        raise PlanningError(f"{name}: no readings with a usable timestamp")
    rep.missing_values = int(s.isna().sum())
    s = s.sort_index()

    dst_days = dst_dates(s.index[0], s.index[-1], site_tz)
    dup = s.index.duplicated(keep="first")
    if dup.any():
        dup_days = s.index[dup].normalize()
        on_dst = np.isin(dup_days, list(dst_days)) if dst_days else np.zeros(dup.sum(), dtype=bool)
        rep.dst_duplicates = int(on_dst.sum())
        rep.duplicates = int(dup.sum()) - rep.dst_duplicates
        s = s.groupby(level=0).mean()

    if s.size < 2:
        raise PlanningError(f"{name}: a single reading is not a load study")
    step = pd.Timedelta(s.index.to_series().diff().median())
    if step <= pd.Timedelta(0):
        raise PlanningError(f"{name}: cannot infer the metering interval")
    rep.interval_min = step / pd.Timedelta(minutes=1)
    grid = pd.date_range(s.index[0].floor(step), s.index[-1], freq=step)
    off_grid = ~s.index.isin(grid)
    if off_grid.any():  # readings between grid points: snap to the slot they fall in, averaging
        s = s.groupby(s.index.floor(step)).mean()
    inserted = ~grid.isin(s.index)
    if inserted.any():
        ins_days = grid[inserted].normalize()
        on_dst = np.isin(ins_days, list(dst_days)) if dst_days else np.zeros(inserted.sum(), dtype=bool)
        # Only the wall-clock hour that does not exist counts as a DST gap; anything longer is a real gap.
        rep.dst_gaps = int(min(on_dst.sum(), round(pd.Timedelta(hours=1) / step) * len(dst_days)))
        rep.gaps_inserted = int(inserted.sum()) - rep.dst_gaps
    s = s.reindex(grid)
    v = s.to_numpy(copy=True)

    per_hour = max(1, round(pd.Timedelta(hours=1) / step))
    finite = np.isfinite(v)
    typical = float(np.median(v[finite])) if finite.any() else 0.0
    if typical > 0:
        zero_mask, rep.zero_runs = _run_mask(finite & (v == 0.0), max(1, round(zero_run_min_h * per_hour)))
        rep.zero_run_values = int(zero_mask.sum())
        v[zero_mask] = np.nan

    # Robust outliers (a Hampel-type rule): the residual from a short centred rolling median (about one hour
    # either side, at least 5 points) against a LOCAL scale, 1.4826 x the rolling one-day median of |residual|.
    # A local scale keeps the ordinary spikiness of a house (cooking, cycling AC) from reading as meter faults,
    # while a reading far outside its own day's variation is flagged. The scale is floored at the global scale
    # and at 5% of the typical load (meters rounding to 0.1 kW on a small building have a MAD near zero).
    window = max(5, 2 * per_hour + 1)
    med = pd.Series(v).rolling(window, center=True, min_periods=window).median().to_numpy()  # no verdict near gaps
    resid = v - med
    ok = np.isfinite(resid)
    if ok.sum() > 10:
        absr = np.abs(resid)
        day = 24 * per_hour
        local = pd.Series(absr).rolling(day, center=True, min_periods=day // 2).median().to_numpy()
        global_scale = float(np.median(absr[ok]))
        scale = 1.4826 * np.fmax(np.nan_to_num(local, nan=global_scale), global_scale)
        scale = np.maximum(scale, 0.05 * abs(typical))
        # ...and only a reading outside the building's own range fences (Q1/Q3 -/+ outlier_k x IQR) is removed:
        # the NEC figure is a maximum, so a real peak must never be cleaned away (that would not be conservative).
        q1, q3 = np.percentile(v[np.isfinite(v)], [25, 75])
        fence = outlier_k * (q3 - q1)
        beyond = (v > q3 + fence) | (v < q1 - fence)
        out = ok & (scale > 0) & (np.where(ok, absr, 0.0) > outlier_k * scale) & np.where(ok, beyond, False)
        rep.outliers = int(out.sum())
        v[out] = np.nan

    missing = ~np.isfinite(v)
    if missing.any():
        fill_mask, _ = _run_mask(missing, 1)
        short = fill_mask & ~_run_mask(missing, int(max_fill_h * per_hour) + 1)[0]
        interp = pd.Series(v).interpolate(method="linear", limit_area="inside").to_numpy()
        v[short] = interp[short]
        rep.interpolated = int((short & np.isfinite(v)).sum())
    rep.left_missing = int((~np.isfinite(v)).sum())
    return pd.Series(v, index=grid, name=kw.name), rep
