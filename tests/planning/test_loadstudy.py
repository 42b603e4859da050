"""Daily profiles, silhouette-chosen k-means on real buildings, and the baseload rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import silhouette_score

from planning.cleaning import clean_series
from planning.errors import PlanningError
from planning.loadstudy import LoadStudy, daily_profiles, minmax_scale, pairwise_distances, silhouette_from_distances
from planning.meter import read_meter


@pytest.mark.parametrize(("n", "k", "seed"), [(40, 2, 0), (120, 5, 1), (200, 9, 2), (60, 30, 3)])
def test_silhouette_matches_sklearn(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 24))
    labels = rng.integers(0, k, n)
    labels[:k] = np.arange(k)  # every cluster present; some are singletons when n is small
    d = pairwise_distances(x)
    assert silhouette_from_distances(d, labels) == pytest.approx(silhouette_score(x, labels), abs=1e-10)


def _study(path: Path, column: str, **kw) -> tuple[LoadStudy, pd.DataFrame]:
    [m] = read_meter(path, columns=[column], **kw)
    s, _ = clean_series(m.kw, site_tz=kw.get("site_tz"))
    prof, _ = daily_profiles(s)
    return LoadStudy(k_min=2, k_max=12, random_state=0).fit(prof), prof


def test_office_clusters_separate_weekdays_from_weekends(doe_csv: Path) -> None:
    study, prof = _study(doe_csv, "MediumOffice")
    assert 2 <= study.k_ <= 12 and study.k_ == max(study.silhouette_, key=study.silhouette_.get)
    # Each cluster is (almost) purely weekday or purely weekend: the office's working week shows.
    purity = [max(c.weekday_days, c.weekend_days) / c.size for c in study.clusters_]
    assert min(purity) > 0.9
    worst = study.worst_cluster()
    assert worst.weekday_days > worst.weekend_days  # the baseload comes from working days
    assert sum(c.size for c in study.clusters_) == len(prof) == 365


def test_real_metered_office_like_building_splits_by_day_type(cambridge_csv: Path) -> None:
    study, _ = _study(cambridge_csv, "b9", site_tz="Europe/London")
    weekend_heavy = [c for c in study.clusters_ if c.weekend_days > c.weekday_days]
    weekday_heavy = [c for c in study.clusters_ if c.weekday_days > c.weekend_days]
    assert weekend_heavy and weekday_heavy
    assert max(c.peak_kw for c in weekday_heavy) > max(c.peak_kw for c in weekend_heavy)


def test_residential_building_plans_evening_peak(citylearn_csv: Path) -> None:
    study, prof = _study(citylearn_csv, "B1")
    base = study.baseload()
    assert base.shape == (24,) and base.max() == pytest.approx(study.worst_cluster().peak_kw)
    assert int(np.argmax(prof.mean().to_numpy())) >= 16  # homes peak in the evening, unlike offices
    seasons = sum(sum(c.seasons.values()) for c in study.clusters_)
    assert seasons == len(prof)


def test_percentile_baseload_is_at_least_the_median(doe_csv: Path) -> None:
    study, _ = _study(doe_csv, "SmallOffice")
    assert np.all(study.baseload("percentile", 95) >= study.baseload("max_median") - 1e-9)
    with pytest.raises(PlanningError, match="baseload"):
        study.baseload("mean")


def test_scaling_is_shared_by_fit_and_score(doe_csv: Path) -> None:
    """The reported silhouette is the one of the labels on the scaled profiles (the seed mixed the two)."""
    study, prof = _study(doe_csv, "MidriseApartment")
    xs = minmax_scale(prof.to_numpy())
    assert silhouette_score(xs, study.labels_) == pytest.approx(study.silhouette_final_, abs=1e-5)  # float32 D
    assert study.silhouette_final_ == pytest.approx(max(study.silhouette_.values()), abs=0.05)


@pytest.mark.parametrize(
    ("days", "flat", "message"),
    [(1, False, "at least 3"), (2, False, "at least 3"), (30, True, "flat load")],
)
def test_degenerate_studies_give_a_clear_error(days: int, flat: bool, message: str) -> None:
    idx = pd.date_range("2024-01-01", periods=24 * days, freq="h")
    kw = pd.Series(np.full(idx.size, 5.0) if flat else np.arange(idx.size, dtype=float) % 24, index=idx)
    prof, dropped = daily_profiles(kw)
    assert dropped == 0
    with pytest.raises(PlanningError, match=message):
        LoadStudy().fit(prof)


def test_incomplete_days_are_dropped_and_counted() -> None:
    idx = pd.date_range("2024-01-01", periods=24 * 5, freq="h")
    kw = pd.Series(np.ones(idx.size), index=idx)
    kw.iloc[30] = np.nan
    prof, dropped = daily_profiles(kw)
    assert dropped == 1 and len(prof) == 4
