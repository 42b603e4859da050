"""Cleaning: every rule counts what it changed, nothing disappears uncounted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planning.cleaning import clean_series
from planning.errors import PlanningError
from planning.meter import read_meter
from tests.planning.conftest import office_like


def _base(days: int = 10, freq: str = "h") -> pd.Series:
    return office_like(days=days, freq=freq)


def test_clean_series_is_unchanged_and_reports_zero() -> None:
    s = _base()
    out, rep = clean_series(s)
    assert rep.outliers == rep.zero_run_values == rep.gaps_inserted == rep.duplicates == 0
    assert np.allclose(out.to_numpy(), s.to_numpy())


@pytest.mark.parametrize(
    ("damage", "field", "count"),
    [
        (lambda s: s.where(~s.index.isin(s.index[[10, 11]])), "missing_values", 2),
        (lambda s: pd.concat([s, s.iloc[[3, 4, 5]]]), "duplicates", 3),
        (lambda s: s.drop(s.index[[20, 21, 22]]), "gaps_inserted", 3),
        (lambda s: s.mask(s.index.isin(s.index[100:103]), 0.0), "zero_run_values", 3),
    ],
)
def test_each_rule_counts_its_repairs(damage, field: str, count: int) -> None:
    out, rep = clean_series(damage(_base()))
    assert getattr(rep, field) == count
    # Short damage is repaired by interpolation: the grid is complete and finite again.
    assert rep.left_missing == 0 and np.isfinite(out.to_numpy()).all()


def test_a_spike_is_removed_reported_and_never_replaced() -> None:
    s = _base(days=30)
    s.iloc[250] = 5000.0
    out, rep = clean_series(s)
    assert rep.outliers == rep.spikes_removed == 1 and out.max() < 200
    assert np.isnan(out.iloc[250])  # removed, left missing: no invented value in its place
    [sus] = rep.suspects
    assert sus["time"] == str(s.index[250]) and sus["kw"] == 5000.0 and sus["action"] == "removed"
    kept, rep_kept = clean_series(s, keep_spikes=True)
    assert kept.max() == 5000.0 and rep_kept.outliers == 0 and rep_kept.suspects[0]["action"].startswith("kept")


def _spike_dropout_year() -> pd.Series:
    """A year like the issue's: real peak ~2,250 kW, a dropout then catch-up, and two isolated spikes."""
    idx = pd.date_range("2023-01-01", periods=24 * 365, freq="h")
    rng = np.random.default_rng(3)
    hour = idx.hour.to_numpy()
    weekday = idx.day_of_week.to_numpy() < 5
    season = 1 + 0.25 * np.sin(2 * np.pi * (idx.day_of_year.to_numpy() - 100) / 365)
    kw = (900 + np.where(weekday & (hour >= 8) & (hour < 19), 900, 0)) * season + rng.normal(0, 30, idx.size)
    s = pd.Series(kw, index=idx)
    i = 24 * 200 + 13  # a summer weekday at 13:00: meter sends 0, then the two hours' energy at once
    s.iloc[i + 1] = s.iloc[i] + s.iloc[i + 1]
    s.iloc[i] = 0.0
    s.iloc[24 * 100 + 3] = 5200.0  # night spike
    s.iloc[24 * 300 + 15] = 6100.0  # afternoon spike
    return s


def test_spike_plus_dropout_year_keeps_a_defensible_maximum() -> None:
    s = _spike_dropout_year()
    real_peak = s.drop(s.index[[24 * 200 + 13, 24 * 200 + 14, 24 * 100 + 3, 24 * 300 + 15]]).max()
    out, rep = clean_series(s)
    assert rep.catchup_pairs == 1 and rep.spikes_removed == 2 and rep.outliers == 4
    # The dropout is not interpolated to an invented value, and the maximum is a reading of the file.
    assert out.iloc[24 * 200 + 13 : 24 * 200 + 15].isna().all()
    assert out.max() == pytest.approx(real_peak) and out.max() in set(s.to_numpy())
    times = {x["time"] for x in rep.suspects if x["action"] == "removed"}
    assert times == {str(s.index[i]) for i in (24 * 200 + 13, 24 * 200 + 14, 24 * 100 + 3, 24 * 300 + 15)}


def test_a_gap_next_to_a_suspect_reading_is_not_interpolated() -> None:
    s = _base(days=30)
    s.iloc[250] = 5000.0
    s.iloc[251] = np.nan  # a missing hour right after the spike: filling it would lean on the spike
    out, rep = clean_series(s)
    assert out.iloc[250:252].isna().all() and rep.left_missing == 2


def test_negative_readings_are_refused_unless_export_is_allowed() -> None:
    s = _base()
    s.iloc[60] = -4.0
    with pytest.raises(PlanningError, match=r"1 negative reading.*-4\.00 kW at .*--allow-export"):
        clean_series(s, name="pv-site")
    out, rep = clean_series(s, allow_export=True)
    assert rep.export_readings == 1 and rep.export_min_kw == -4.0 and out.iloc[60] == -4.0


def test_long_outage_is_left_missing_and_counted() -> None:
    s = _base()
    s.iloc[30:40] = 0.0  # 10 h of zeros: an outage longer than max_fill_h
    out, rep = clean_series(s, max_fill_h=3)
    assert rep.zero_runs == 1 and rep.zero_run_values == 10
    assert rep.left_missing == 10 and out.isna().sum() == 10


def test_real_peaks_are_not_outliers() -> None:
    """A sustained afternoon peak (hours, not one sample) is load, not noise."""
    s = _base(days=14)
    s[(s.index.day == 9) & (s.index.hour >= 12) & (s.index.hour < 16)] += 150.0
    out, rep = clean_series(s)
    assert rep.outliers == 0 and out.max() > 200


def test_dst_repeat_and_gap_are_counted_apart(tmp_path) -> None:
    """UTC data on a London clock: the spring gap and the autumn repeat are DST, not data faults."""
    idx = pd.date_range("2019-03-25", "2019-11-05", freq="h")
    f = tmp_path / "utc.csv"
    f.write_text("datetime_utc,kW\n" + "".join(f"{t},{10 + t.hour % 5}\n" for t in idx))
    [m] = read_meter(f, site_tz="Europe/London")
    idx2 = pd.date_range("2019-03-30", "2019-04-02", freq="h")
    f2 = tmp_path / "utc2.csv"
    f2.write_text("datetime_utc,kW\n" + "".join(f"{t},{10 + t.hour % 5}\n" for t in idx2))
    [spring] = read_meter(f2, site_tz="Europe/London")
    _, rep_spring = clean_series(spring.kw, site_tz="Europe/London")
    assert rep_spring.dst_gaps == 1 and rep_spring.gaps_inserted == 0
    _, rep = clean_series(m.kw, site_tz="Europe/London")
    assert rep.dst_duplicates == 1 and rep.duplicates == 0


def test_fifteen_minute_interval_is_detected() -> None:
    out, rep = clean_series(_base(days=3, freq="15min"))
    assert rep.interval_min == 15 and out.size == 3 * 96


def test_single_reading_is_refused() -> None:
    with pytest.raises(PlanningError, match="single reading"):
        clean_series(pd.Series([1.0], index=pd.DatetimeIndex(["2024-01-01"])))


def test_spiky_real_homes_keep_their_peaks_and_a_meter_glitch_is_caught(citylearn_csv: Path) -> None:
    """Houses spike (cooking, AC); those peaks are the NEC maximum and must survive. A 20x glitch must not."""
    [home] = read_meter(citylearn_csv, columns=["B7"])
    out, rep = clean_series(home.kw)
    assert rep.spikes_removed == 0 and out.max() == pytest.approx(home.kw.max())
    glitched = home.kw.copy()
    glitched.iloc[4000] = 20 * home.kw.max()
    out, rep = clean_series(glitched)
    assert rep.spikes_removed == 1 and out.max() == pytest.approx(home.kw.max())


def test_similar_day_stats_match_a_brute_force_count() -> None:
    """Median and max of the same hour on same-type days within 21 days, the day itself excluded."""
    from planning.cleaning import similar_day_stats

    idx = pd.date_range("2023-01-01", periods=24 * 90, freq="h")
    v = np.random.default_rng(0).normal(10, 2, idx.size)
    v[::7] = np.nan
    med, mx = similar_day_stats(v, idx)
    for i in (5, 700, 1500, 2100):
        d, h = idx[i].normalize(), idx[i].hour
        days = [d + pd.Timedelta(days=o) for o in range(-21, 22) if o]
        same = [x for x in days if (x.day_of_week >= 5) == (d.day_of_week >= 5) and x >= idx[0] and x <= idx[-1]]
        vals = v[idx.get_indexer([x + pd.Timedelta(hours=h) for x in same])]
        assert med[i] == pytest.approx(np.nanmedian(vals)) and mx[i] == pytest.approx(np.nanmax(vals))
