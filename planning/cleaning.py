"""Explicit, counted cleaning of a meter series.

Why explicit: the NEC 220.87 figure is a *maximum*, so one spike or one zeroed outage changes how many
chargers a building may take. Every repair is therefore a rule with a counter in ``CleaningReport``; nothing
is dropped without being counted.

Order (each step sees the previous one's output):

1. unparseable values ('?', blanks) -> missing; timestamps that could not be placed (NaT) -> dropped, counted;
2. duplicate timestamps -> averaged (the daylight-saving repeat hour is counted separately);
3. regular grid at the file's own interval: absent slots are inserted as missing (DST gaps counted apart);
4. negative readings (net export) -> refused unless ``allow_export``; then kept and reported;
5. dropout-then-catch-up: a run of near-zero readings (up to 6 h, each at most 10% of the same hour on
   similar days and of the readings around the run) followed by one reading at least 1.5x both outer
   neighbours, where the run plus the catch-up carries the energy the neighbouring hours say it should
   (within 30%): a meter that stored its readings and sent them late. Both sides are removed;
6. runs of exact zeros of at least ``zero_run_min_h`` in a building whose typical load is positive -> outage,
   set missing (upstream exports such as the Cambridge archive write 0 for "no reading");
7. isolated spikes: a reading at least twice and ``outlier_k`` robust sigmas above the larger of its two
   neighbours AND of every reading at the same time of day on similar days (same weekday/weekend type, within
   21 days), and above 1.5x the building's 99.9th percentile. It is removed. A reading that stands out from
   its neighbours but not from similar days (a recurring peak) is kept and reported as suspect.
   ``keep_spikes`` keeps every flagged reading;
8. missing runs up to ``max_fill_h`` are linearly interpolated, but only between two readings that are
   neither removed nor suspect: a removed reading stays missing (never replaced by an invented value) and the
   daily-profile step drops (and counts) the days it touches.

Every removed or suspect reading is listed in ``CleaningReport.suspects`` with its time, value, rule and
action, so the maximum demand the plan uses is one an engineer can find in the cleaned data and defend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
    catchup_pairs: int = 0
    spikes_removed: int = 0
    suspects_kept: int = 0
    export_readings: int = 0
    export_min_kw: float = 0.0
    suspects: list[dict] = field(default_factory=list)  # {"time", "kw", "rule", "action"} per flagged reading

    def as_dict(self) -> dict:
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


def similar_day_stats(v: np.ndarray, grid: pd.DatetimeIndex, window_days: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """Median and maximum of the readings at the same time of day on similar days (per sample).

    Similar days: the same day type (weekday or weekend) within ``window_days`` either side, the day itself
    excluded; missing values are ignored. Vectorised over a (days x slots x window) array (see below).
    """
    day = grid.normalize()
    days, day_idx = np.unique(day.to_numpy(), return_inverse=True)  # datetime64: keeps the index's own unit
    slot_len = grid[1] - grid[0]
    slot = ((grid - day) // slot_len).to_numpy().astype(int)
    per_day = int(slot.max()) + 1
    m = np.full((days.size, per_day), np.nan)
    m[day_idx, slot] = v
    weekend = pd.DatetimeIndex(days).day_of_week.to_numpy() >= 5  # (an asi8 round trip would lose the unit)
    w = window_days
    # Every day's similar days side by side: pad the (days x slots) matrix with w NaN days at both ends and take
    # a sliding window over days, so cell [d, s, j] is day d + j - w at slot s. The window is laid out last,
    # so each cell's 2w + 1 candidates are contiguous for the sort below (sorting along a leading axis of a
    # stacked copy cost twice as much). The day itself and days of the other type are masked to NaN.
    padded = np.full((days.size + 2 * w, per_day), np.nan)
    padded[w : w + days.size] = m
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * w + 1, axis=0)  # (days, slots, 2w + 1)
    wk_pad = np.full(days.size + 2 * w, -1, dtype=np.int8)
    wk_pad[w : w + days.size] = weekend
    same_type = np.lib.stride_tricks.sliding_window_view(wk_pad, 2 * w + 1) == weekend[:, None].astype(np.int8)
    same_type[:, w] = False  # the day itself
    # NaN-aware median by one sort (NaN sorts last) and the middle of each cell's finite count: np.nanmedian
    # goes through masked arrays and cost ten times as much here.
    stack = np.where(same_type[:, None, :], window, np.nan)
    stack.sort(axis=-1)
    count = np.isfinite(stack).sum(axis=-1)
    last = np.maximum(count - 1, 0)[..., None]
    lo = np.take_along_axis(stack, last // 2, axis=-1)[..., 0]
    hi = np.take_along_axis(stack, (count // 2)[..., None], axis=-1)[..., 0]
    med = np.where(count > 0, 0.5 * (lo + hi), np.nan)
    mx = np.where(count > 0, np.take_along_axis(stack, last, axis=-1)[..., 0], np.nan)
    return med[day_idx, slot], mx[day_idx, slot]


def _neighbour_max(v: np.ndarray) -> np.ndarray:
    """The larger of the previous and next reading (NaN-aware; NaN when both are missing)."""
    prev = np.r_[np.nan, v[:-1]]
    nxt = np.r_[v[1:], np.nan]
    return np.fmax(prev, nxt)


def _catchup_pairs(v: np.ndarray, expected: np.ndarray, per_hour: int, tol: float = 0.3) -> np.ndarray:
    """Mask of dropout runs and their catch-up reading (see rule 5 of the module docstring)."""
    low = np.isfinite(v) & np.isfinite(expected) & (v <= 0.1 * expected)
    starts, lengths = _runs(low)
    out = np.zeros(v.size, dtype=bool)
    max_len = 6 * per_hour
    for st, ln in zip(starts, lengths, strict=True):  # few runs: a loop over runs, not samples
        j = st + ln
        if ln > max_len or st == 0 or j + 1 >= v.size:
            continue
        before, after = v[st - 1], v[j + 1]
        if not (np.isfinite(v[j]) and np.isfinite(before) and np.isfinite(after)):
            continue
        level = 0.5 * (before + after)
        # A dropout reads far below the readings around it too (not only below similar days), and the
        # catch-up far above them.
        if level <= 0 or v[st:j].max() > 0.1 * min(before, after) or v[j] < 1.5 * max(before, after):
            continue
        energy = v[st : j + 1].sum()
        if abs(energy - (ln + 1) * level) <= tol * (ln + 1) * level:
            out[st : j + 1] = True
    return out


def clean_series(
    kw: pd.Series,
    *,
    site_tz: str | None = None,
    zero_run_min_h: float = 1.0,
    outlier_k: float = 6.0,
    max_fill_h: float = 3.0,
    name: str = "meter",
    keep_spikes: bool = False,
    allow_export: bool = False,
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

    negative = np.isfinite(v) & (v < 0)
    if negative.any():
        first = int(np.flatnonzero(negative)[0])
        if not allow_export:
            raise PlanningError(
                f"{name}: {int(negative.sum())} negative reading(s) (first {v[first]:.2f} kW at {grid[first]}): "
                f"net export (e.g. solar) or a sign error. A load study needs the import; give --allow-export "
                f"to plan on the net load (negatives are then kept and reported)"
            )
        rep.export_readings = int(negative.sum())
        rep.export_min_kw = float(v[negative].min())

    per_hour = max(1, round(pd.Timedelta(hours=1) / step))
    finite = np.isfinite(v)
    typical = float(np.median(v[finite])) if finite.any() else 0.0
    expected, similar_max = similar_day_stats(v, grid)
    suspect = np.zeros(v.size, dtype=bool)  # flagged readings (removed or kept): never interpolation endpoints
    flagged: list[tuple[np.ndarray, str, str]] = []

    pairs = _catchup_pairs(v, expected, per_hour)
    if pairs.any():
        rep.catchup_pairs = int((np.diff(np.r_[0, pairs.astype(np.int8)]) == 1).sum())
        flagged.append((pairs, "dropout then catch-up (energy conserved over the pair)", "removed"))
        suspect |= pairs

    if typical > 0:
        zero_mask, rep.zero_runs = _run_mask(finite & (v == 0.0) & ~pairs, max(1, round(zero_run_min_h * per_hour)))
        rep.zero_run_values = int(zero_mask.sum())
        v[zero_mask] = np.nan

    # Isolated spikes: far above both neighbours and above every same-time reading on similar days. The robust
    # sigma is the median absolute deviation from the similar-day median (global, floored at 5% of the load).
    resid = np.abs(v - expected)
    ok = np.isfinite(resid) & ~pairs
    sigma = 1.4826 * float(np.median(resid[ok])) if ok.sum() > 10 else 0.0
    sigma = max(sigma, 0.05 * abs(typical))
    vv = np.where(pairs, np.nan, v)
    nb = _neighbour_max(vv)
    ref_all = np.fmax(nb, similar_max)
    with np.errstate(invalid="ignore"):
        above_nb = np.isfinite(vv) & np.isfinite(nb) & (vv >= 1.5 * nb) & (vv - nb >= outlier_k * sigma) & (vv > 0)
        # Twice the highest nearby reading, and above 1.5x the building's own 99.9th percentile: spiky homes
        # (cooking, AC) reach 3x their neighbours, but their real peaks recur within the year's top readings.
        high = 1.5 * float(np.percentile(vv[np.isfinite(vv)], 99.9)) if np.isfinite(vv).any() else np.inf
        above_sim = (vv >= 2.0 * ref_all) & (vv - ref_all >= outlier_k * sigma) & (vv > high)
    spikes = above_nb & np.where(np.isfinite(ref_all), above_sim, True)
    recurring = above_nb & ~spikes
    if spikes.any():
        flagged.append((spikes, "isolated spike (vs neighbours and same hour on similar days)", "removed"))
    if recurring.any():
        flagged.append((recurring, "above both neighbours, but similar days reach it", "kept"))
    suspect |= spikes | recurring
    rep.spikes_removed = int(spikes.sum())

    for mask, rule, action in flagged:
        act = "kept (keep_spikes)" if keep_spikes and action == "removed" else action
        for i in np.flatnonzero(mask):
            rep.suspects.append({"time": str(grid[i]), "kw": round(float(s.iloc[i]), 3), "rule": rule, "action": act})
    removed = (pairs | spikes) if not keep_spikes else np.zeros(v.size, dtype=bool)
    rep.outliers = int(removed.sum())
    rep.suspects_kept = len(rep.suspects) - rep.outliers
    v[removed] = np.nan

    missing = ~np.isfinite(v)
    if missing.any():
        short = missing & ~_run_mask(missing, int(max_fill_h * per_hour) + 1)[0] & ~removed
        # A gap is filled only between two clean readings: never from a suspect (kept or removed) one.
        starts, lengths = _runs(short)
        bad = np.zeros(v.size, dtype=bool)
        for st, ln in zip(starts, lengths, strict=True):
            left, right = st - 1, st + ln
            if left < 0 or right >= v.size or suspect[left] or suspect[right] or removed[left] or removed[right]:
                bad[st : st + ln] = True
        short &= ~bad
        interp = pd.Series(v).interpolate(method="linear", limit_area="inside").to_numpy()
        v[short] = interp[short]
        rep.interpolated = int((short & np.isfinite(v)).sum())
    rep.left_missing = int((~np.isfinite(v)).sum())
    return pd.Series(v, index=grid, name=kw.name), rep
