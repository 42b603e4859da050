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
        (lambda s: s.mask(s.index == s.index[50], 5000.0), "outliers", 1),
        (lambda s: s.mask(s.index == s.index[60], -4000.0), "outliers", 1),
    ],
)
def test_each_rule_counts_its_repairs(damage, field: str, count: int) -> None:
    out, rep = clean_series(damage(_base()))
    assert getattr(rep, field) == count
    # Short damage is repaired by interpolation: the grid is complete and finite again.
    assert rep.left_missing == 0 and np.isfinite(out.to_numpy()).all()
    assert out.max() < 200  # a spike never survives to become the NEC maximum demand


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
    assert rep.outliers == 0 and out.max() == pytest.approx(home.kw.max())
    glitched = home.kw.copy()
    glitched.iloc[4000] = 20 * home.kw.max()
    out, rep = clean_series(glitched)
    assert rep.outliers == 1 and out.max() == pytest.approx(home.kw.max())
